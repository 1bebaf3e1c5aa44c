#!/usr/bin/env python3
# Writes a copy of kernels/decode/decode_int4_mma.cuh to <dir>/kernels/decode/ (argv[1],
# default /tmp/mmaprobe) with the stamps decode_mlp_probe.py puts into decodeLinearKernel,
# in decodeLinearMmaKernel (outputs other than ARGMAX): build a chain with -DMC_PROBE and
# -I<dir> first so that decode.cu's include finds the copy. Run from the repository root;
# the patterns match decode_int4_mma.cuh as of session 17.
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from source_patch import SourcePatch
out = sys.argv[1] if len(sys.argv) > 1 else '/tmp/mmaprobe'
src = SourcePatch('kernels/decode/decode_int4_mma.cuh')
rep = src.rep
rep("""  const int n = p.n, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;""",
    """  unsigned long long g0, g1;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g0));
  const long long c0 = clock64();
  const int n = p.n, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;""")
rep("""  waitForPrevious();
  releaseDependents();""", """  waitForPrevious();
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g1));
  const long long c1 = clock64();
  releaseDependents();""")
rep("""  stageInput<kIn, true, true, kHeadsSums<kIn, kOut>>(p, sx, sxq, sln, scratch, attnPos);
""", """  stageInput<kIn, true, true, kHeadsSums<kIn, kOut>>(p, sx, sxq, sln, scratch, attnPos);
  const long long c2 = clock64();
  unsigned dummy;
  asm volatile("mov.b32 %0, %1;" : "=r"(dummy) : "r"(cur.w[0][0][0].x ^ cur.w[kTiles - 1][kRows - 1][kJ - 1].w));
  const long long c3 = clock64() + (dummy & 0);
""")
rep("""    cur.dots(sxq, p.k / 32, tot);
    if (lane < kRowsPerWarp && warpRow0 + lane < n) finish(tot, warpRow0 + lane, true, bias);""",
    """    cur.dots(sxq, p.k / 32, tot);
    unsigned d2;
    asm volatile("mov.b32 %0, %1;" : "=r"(d2) : "f"(tot[0]));
    const long long c4 = clock64() + (d2 & 0);
    if (lane < kRowsPerWarp && warpRow0 + lane < n) finish(tot, warpRow0 + lane, true, bias);
    if (threadIdx.x == 0 && p.argmaxValues != nullptr) {
      unsigned long long g2;
      asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g2));
      unsigned long long* o = reinterpret_cast<unsigned long long*>(p.argmaxValues) + (static_cast<size_t>(p.argmaxSlots) * 512 + blockIdx.x) * 8;
      o[0] = g0; o[1] = g1; o[2] = g2; o[3] = c1 - c0; o[4] = c2 - c1; o[5] = c3 - c2; o[6] = c4 - c3; o[7] = clock64() - c4;
    }""")
src.write(out + '/kernels/decode/decode_int4_mma.cuh')
