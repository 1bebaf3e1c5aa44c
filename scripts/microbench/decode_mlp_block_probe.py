#!/usr/bin/env python3
# Writes a copy of kernels/decode/decode_mlp_block.cu to <dir>/kernels/decode/ (argv[1],
# default /tmp/mbprobe) with per-block stamps for decode_block_layer_chain.cu -DMC_PROBE
# (mode mlpblock; build with -I<dir> first so that the chain's include finds the copy):
# thread 0 of each block records %globaltimer at entry, after the programmatic wait and at
# the end, and clock64 deltas for start->wait, clear + staging, c_fc + GELU (to the
# barrier), c_proj products, atomics; the stamps go to fc.argmaxValues, slot
# fc.argmaxSlots (8 u64 a block, 512 blocks a slot). Run from the repository root; the
# patterns match the file as of session 22 (both c_fc paths; the layer chain runs c_fc
# in row tiles as the decoder does, or 4 rows a warp with WB_CHAIN_FC_TILES=0).
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from source_patch import SourcePatch
out = sys.argv[1] if len(sys.argv) > 1 else '/tmp/mbprobe'
src = SourcePatch('kernels/decode/decode_mlp_block.cu')
rep = src.rep
rep("""  const WbDecodeLinearParams& p = mp.fc;
  extern""", """  const WbDecodeLinearParams& p = mp.fc;
  unsigned long long g0, g1, g2;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g0));
  const long long c0 = clock64();
  extern""")
rep("""  waitForPrevious();
  releaseDependents();""", """  waitForPrevious();
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g1));
  const long long c1 = clock64();
  releaseDependents();""")
rep("""  // c_fc + bias + GELU for the block's units""", """  const long long c2 = clock64();
  // c_fc + bias + GELU for the block's units""")
rep("""  // c_proj: A = the 32 units""", """  const long long c3 = clock64();
  // c_proj: A = the 32 units""")
rep("""  // Lanes with an even c take""", """  unsigned d2;
  asm volatile("mov.b32 %0, %1;" : "=r"(d2) : "f"(mine[0][0] + mine[1][1]));
  const long long c4 = clock64() + (d2 & 0);
  // Lanes with an even c take""")
rep("""make_float4(v0, v1, n0, n1));
  }
}
""", """make_float4(v0, v1, n0, n1));
  }
  if (threadIdx.x == 0 && p.argmaxValues != nullptr) {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g2));
    unsigned long long* o = reinterpret_cast<unsigned long long*>(p.argmaxValues) +
                            (static_cast<size_t>(p.argmaxSlots) * 512 + blockIdx.x) * 8;
    o[0] = g0; o[1] = g1; o[2] = g2; o[3] = c1 - c0; o[4] = c2 - c1; o[5] = c3 - c2; o[6] = c4 - c3;
    o[7] = clock64() - c4;
  }
}
""")
src.write(out + '/kernels/decode/decode_mlp_block.cu')
