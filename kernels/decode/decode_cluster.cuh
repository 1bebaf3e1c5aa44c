// Device helpers of the cluster decode kernels (decode_attention_block.cu,
// decode_attention_proj.cu): split cluster barriers, cp.async copies, and the merges of
// online-softmax partials. Internal to kernels/decode; no launches, no host code.
#pragma once

#include <cuda_fp16.h>

#include <cfloat>

namespace wbk {
namespace {

// Split cluster barrier: arrive, do independent work, then wait (release / acquire
// order the shared-memory traffic between the cluster's blocks).
__device__ __forceinline__ void clusterArrive() { asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void clusterArriveRelaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void clusterWait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }

__device__ __forceinline__ void cpAsync16(void* dst, const void* src) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src) : "memory");
}
__device__ __forceinline__ void cpAsyncWaitAll() {
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
}

// Merges softmax partial (m2, l2, o2) into (m, l, o); a partial without keys has
// m = -FLT_MAX and l = o = 0, and weighs nothing.
__device__ __forceinline__ void mergeSoftmax(float& m, float& l, float* o, float m2, float l2, const float* o2, int n) {
  const float mn = fmaxf(m, m2);
  const float a = exp2f(m - mn), b = exp2f(m2 - mn);  // exp2f(-FLT_MAX - x) = 0
  l = l * a + l2 * b;
  for (int i = 0; i < n; ++i) o[i] = o[i] * a + o2[i] * b;
  m = mn;
}

// A warp's four keys (eight lanes a key, lanes 8 apart, each lane eight of the 64 dims)
// merged by shuffles; lanes 0..7 then store the warp's partial at index `warp`.
__device__ __forceinline__ void storeWarpSoftmax(float m, float l, float o[8], float* warpM, float* warpL,
                                                 float (*warpO)[64], int warp, int lane) {
#pragma unroll
  for (int off = 8; off < 32; off <<= 1) {
    float o2[8];
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), l2 = __shfl_xor_sync(0xffffffffu, l, off);
#pragma unroll
    for (int x = 0; x < 8; ++x) o2[x] = __shfl_xor_sync(0xffffffffu, o[x], off);
    mergeSoftmax(m, l, o, m2, l2, o2, 8);
  }
  if (lane < 8) {
    if (lane == 0) warpM[warp] = m, warpL[warp] = l;
#pragma unroll
    for (int x = 0; x < 8; ++x) warpO[warp][lane * 8 + x] = o[x];
  }
}

}  // namespace
}  // namespace wbk
