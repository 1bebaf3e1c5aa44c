#!/usr/bin/env python3
# Writes a copy of kernels/decode/decode_int4_mma.cuh to <dir>/kernels/decode/ (argv[1],
# default /tmp/mmaprobe) with the stamps decode_mlp_probe.py puts into decodeLinearKernel,
# in decodeLinearMmaKernel: build decode_mlp_chain.cu -DMC_PROBE with -I<dir> first so
# that decode.cu's include finds the copy. Run from the repository root.
import os, sys
out = sys.argv[1] if len(sys.argv) > 1 else '/tmp/mmaprobe'
s = open('kernels/decode/decode_int4_mma.cuh').read()
def rep(old, new):
    global s
    assert old in s, old
    s = s.replace(old, new, 1)
rep("""namespace wbk {
namespace {
""", """namespace wbk {
namespace {
__device__ __forceinline__ unsigned long long mmaGtime() { unsigned long long t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t; }
""")
rep("""  const int k = p.k, n = p.n, groups""", """  const unsigned long long g0 = mmaGtime();
  const long long c0 = clock64();
  const int k = p.k, n = p.n, groups""")
rep("""  waitForPrevious();
  releaseDependents();""", """  waitForPrevious();
  const unsigned long long g1 = mmaGtime();
  const long long c1 = clock64();
  releaseDependents();""")
rep("""  stageInput<kIn, true>(p, sx, sxq, sln, scratch, attnPos);
""", """  stageInput<kIn, true>(p, sx, sxq, sln, scratch, attnPos);
  const long long c2 = clock64();
  unsigned dummy;
  asm volatile("mov.b32 %0, %1;" : "=r"(dummy) : "r"(w[0][0][0].x ^ w[kTiles - 1][kRows - 1][kJ - 1].w));
  const long long c3 = clock64() + (dummy & 0);
""")
rep("""  // The diagonal: lane""", """  unsigned d2;
  asm volatile("mov.b32 %0, %1;" : "=r"(d2) : "f"(acc[0][0][0][0] + acc[kTiles - 1][kJ - 1][0][3]));
  const long long c4 = clock64() + (d2 & 0);
  if (threadIdx.x == 0 && p.argmaxValues != nullptr) {
    unsigned long long* o = reinterpret_cast<unsigned long long*>(p.argmaxValues) + (static_cast<size_t>(p.argmaxSlots) * 512 + blockIdx.x) * 8;
    o[0] = g0; o[1] = g1; o[3] = c1 - c0; o[4] = c2 - c1; o[5] = c3 - c2; o[6] = c4 - c3;
  }
  // The diagonal: lane""")
rep("""  storeRow<kOut>(p, myRow, value + bias, true, residual, stepPos, best, bestIdx);
}""", """  storeRow<kOut>(p, myRow, value + bias, true, residual, stepPos, best, bestIdx);
  if (threadIdx.x == 0 && p.argmaxValues != nullptr) {
    unsigned long long* o = reinterpret_cast<unsigned long long*>(p.argmaxValues) + (static_cast<size_t>(p.argmaxSlots) * 512 + blockIdx.x) * 8;
    o[2] = mmaGtime(); o[7] = clock64() - c4;
  }
}""")
os.makedirs(out + '/kernels/decode', exist_ok=True)
open(out + '/kernels/decode/decode_int4_mma.cuh', 'w').write(s)
