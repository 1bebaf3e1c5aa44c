#!/usr/bin/env python3
# Writes a copy of kernels/decode/decode.cu (or argv[1]) to argv[2] (default
# /tmp/decode_probe.cu) with timestamps in decodeLinearKernel for decode_mlp_chain.cu
# -DMC_PROBE: thread 0 of each block stamps %globaltimer at entry, after the programmatic
# wait and at the end, and clock64 deltas for the staging, the weights becoming usable,
# the products and the epilogue. The stamps go to the buffer the chain passes as
# p.argmaxValues, slot p.argmaxSlots (non-argmax kernels only, which never read them).
# Run from the repository root; the patterns match decode.cu as of session 17 (a failed
# assert names the one that moved).
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from source_patch import SourcePatch
src = SourcePatch(sys.argv[1] if len(sys.argv) > 1 else 'kernels/decode/decode.cu')
rep = src.rep
rep("""namespace wbk {
namespace {
""", """namespace wbk {
namespace {
__device__ __forceinline__ unsigned long long gtime() { unsigned long long t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t; }
__device__ __forceinline__ long long ctime() { return clock64(); }
""")
rep("""  const int k = p.k, n = p.n;
  const int rowChunks""", """  const unsigned long long g0 = gtime();
  const long long c0 = ctime();
  const int k = p.k, n = p.n;
  const int rowChunks""")
rep("""  waitForPrevious();
  releaseDependents();
  const int64_t stepPos""", """  waitForPrevious();
  const unsigned long long g1 = gtime();
  const long long c1 = ctime();
  releaseDependents();
  const int64_t stepPos""")
rep("""    stageInput<kIn, kInt4, true, kHeadsSums<kIn, kOut>>(p, sx, sxq, sln, scratch, attnPos);
  }
""", """    stageInput<kIn, kInt4, true, kHeadsSums<kIn, kOut>>(p, sx, sxq, sln, scratch, attnPos);
  }
  const long long c2 = ctime();
  unsigned dummy;
  asm volatile("mov.b32 %0, %1;" : "=r"(dummy) : "r"(w[0].x ^ w[kVmax - 1].w));
  const long long c3 = ctime() + (dummy & 0);
  long long c4 = 0;
""")
rep("""    float acc = (accs[0] + accs[1]) + (accs[2] + accs[3]);""", """    float acc = (accs[0] + accs[1]) + (accs[2] + accs[3]);
    if (c4 == 0) { unsigned d2; asm volatile("mov.b32 %0, %1;" : "=r"(d2) : "f"(acc)); c4 = ctime() + (d2 & 0); }""")
rep("""  if (kOut == WB_DECODE_OUT_ARGMAX) argmaxFinish(p, best, bestIdx, bestValue, bestIndex, &lastBlock);
}""", """  if (kOut == WB_DECODE_OUT_ARGMAX) argmaxFinish(p, best, bestIdx, bestValue, bestIndex, &lastBlock);
  if (kOut != WB_DECODE_OUT_ARGMAX && p.argmaxValues != nullptr && threadIdx.x == 0) {
    __syncwarp();
    unsigned long long* o = reinterpret_cast<unsigned long long*>(p.argmaxValues) + (static_cast<size_t>(p.argmaxSlots) * 512 + blockIdx.x) * 8;
    o[0] = g0; o[1] = g1; o[2] = gtime(); o[3] = c1 - c0; o[4] = c2 - c1; o[5] = c3 - c2; o[6] = c4 - c3; o[7] = ctime() - c4;
  }
}""")
src.write(sys.argv[2] if len(sys.argv) > 2 else '/tmp/decode_probe.cu')
