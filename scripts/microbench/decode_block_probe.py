#!/usr/bin/env python3
# Writes a copy of kernels/decode/decode_attention_block.cu (or argv[1]) to argv[2]
# (default /tmp/decode_attention_block_probe.cu) with per-block stamps for
# decode_block_layer_chain.cu -DMC_PROBE: thread 0 of each block records %globaltimer at
# entry, after the programmatic wait and at the end, and clock64 deltas for the phases
# (input staged, c_attn rows, q/k/v traded over the cluster, attention, softmax partials
# merged over the cluster, final merge + c_proj + atomics). The stamps go to the buffer
# passed as ab.qkv.argmaxValues, slot ab.qkv.argmaxSlots (16 u64 a block, 512 blocks a
# slot). Run from the repository root; the patterns match the file as of session 15.
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from source_patch import SourcePatch
src = SourcePatch(sys.argv[1] if len(sys.argv) > 1 else 'kernels/decode/decode_attention_block.cu')
rep = src.rep
rep("""namespace cg = cooperative_groups;
""", """namespace cg = cooperative_groups;
__device__ __forceinline__ unsigned long long gtimeB() { unsigned long long t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t; }
__device__ __forceinline__ long long touchB(float v) { unsigned d; asm volatile("mov.b32 %0, %1;" : "=r"(d) : "f"(v)); return d & 0; }
""")
rep("""  const WbDecodeLinearParams& p = ab.qkv;
  cg::cluster_group cluster""", """  const WbDecodeLinearParams& p = ab.qkv;
  const unsigned long long g0 = gtimeB();
  long long cs[8];
  cs[0] = clock64();
  cg::cluster_group cluster""")
rep("""  waitForPrevious();
  releaseDependents();
  if (kIn == WB_DECODE_IN_EMBED) {""", """  waitForPrevious();
  const unsigned long long g1 = gtimeB();
  cs[1] = clock64();
  releaseDependents();
  if (kIn == WB_DECODE_IN_EMBED) {""")
rep("""  stageInput<kIn, kInt4, true, kIn == WB_DECODE_IN_HEADS ? WB_DECODE_MLP_SUMS : 0>(p, sx, sxq, sln, sh.scratch);
""", """  stageInput<kIn, kInt4, true, kIn == WB_DECODE_IN_HEADS ? WB_DECODE_MLP_SUMS : 0>(p, sx, sxq, sln, sh.scratch);
  cs[2] = clock64();
""")
rep("""  for (int r = 0; r < 3; ++r) qkv[r] = __half2float(__float2half_rn(warpSum(acc[r]) + qkvBias[r]));
""", """  for (int r = 0; r < 3; ++r) qkv[r] = __half2float(__float2half_rn(warpSum(acc[r]) + qkvBias[r]));
  cs[3] = clock64() + touchB(qkv[0] + qkv[1] + qkv[2]);
""")
rep("""  cpAsyncWaitAll();  // each thread reads back only the keys it copied
  clusterArrive();
  clusterWait();
""", """  cpAsyncWaitAll();  // each thread reads back only the keys it copied
  clusterArrive();
  clusterWait();
  cs[4] = clock64();
""")
rep("""  if (lane < 8) {
    if (lane == 0) sh.warpM[warp] = m, sh.warpL[warp] = l;""", """  cs[5] = clock64() + touchB(m + l + o[0]);
  if (lane < 8) {
    if (lane == 0) sh.warpM[warp] = m, sh.warpL[warp] = l;""")
rep("""  clusterArrive();
  clusterWait();
  if (tid < kHeadDim) {
    float hm""", """  clusterArrive();
  clusterWait();
  cs[6] = clock64();
  if (tid < kHeadDim) {
    float hm""")
rep("""        ab.headPartials[static_cast<int64_t>(head) * e + projRow0 + i] = a;
    }
  }
}""", """        ab.headPartials[static_cast<int64_t>(head) * e + projRow0 + i] = a;
    }
  }
  if (p.argmaxValues != nullptr && threadIdx.x == 0) {
    cs[7] = clock64();
    unsigned long long* out = reinterpret_cast<unsigned long long*>(p.argmaxValues) +
                              (static_cast<size_t>(p.argmaxSlots) * 512 + blockIdx.x) * 16;
    out[0] = g0;
    out[1] = g1;
    out[2] = gtimeB();
    for (int i = 0; i < 7; ++i) out[3 + i] = cs[i + 1] - cs[i];
  }
}""")
src.write(sys.argv[2] if len(sys.argv) > 2 else '/tmp/decode_attention_block_probe.cu')
