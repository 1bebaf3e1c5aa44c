// Micro-benchmark (issue 7, docs/PERF.md "Local q, shared memory and the carveout"): what a
// decode kernel's input staging costs when 128 blocks read the same vector that the
// previous kernel just wrote, and whether thread block clusters that fetch it once with
// a multicast bulk copy (one L2 read per cluster, delivered into every block's shared
// memory, each block waiting on its own mbarrier: no cluster barrier) make it cheaper.
// A CUDA graph of 500 kernels with programmatic launch; kernel i reads `copies` vectors of
// 1024 fp32 (1: an attention block's head sum; 5: an MLP block's four sums plus x and
// bias, as the attention block's HEADS staging reads), sums them and their squares over
// the block (a LayerNorm's statistics), and writes its 8-float slice of each copy for
// kernel i + 1. Modes: plain (each block loads everything with ld.global.cg), cluster
// (the same, launched in clusters of 8), multicast (clusters of 8, block r of a cluster
// fetching slice r for all 8). Prints us per kernel (the mean of 7 x 200 replays).
// Not part of the build:
//   nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -o /tmp/smc \
//       scripts/microbench/staging_multicast_cost.cu
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "chain_support.cuh"

namespace {

constexpr int kBlocks = 128, kThreads = 256, kCluster = 8, kLen = 1024, kMaxCopies = 5;

enum Mode { kPlain = 0, kClusterPlain = 1, kMulticast = 2 };

__device__ __forceinline__ uint32_t smemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

template <int kMode>
__global__ void __launch_bounds__(kThreads) stageStep(float* vec, int i, int copies) {
  __shared__ alignas(128) float4 staged[kMaxCopies * kLen / 4];
  __shared__ alignas(8) uint64_t bar;
  __shared__ float red[2 * kThreads / 32];
  const float* in = vec + static_cast<size_t>(i & 1) * kMaxCopies * kLen;
  float* out = vec + static_cast<size_t>((i + 1) & 1) * kMaxCopies * kLen;
  const int bytes = copies * kLen * 4;
  unsigned rank = 0;
  if (kMode == kMulticast) {
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    if (threadIdx.x == 0) {
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smemAddr(&bar)) : "memory");
      asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    // Every block's barrier exists before any block's copy can signal it; before the
    // programmatic wait, so off the critical path.
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  float sum = 0.f, squares = 0.f;
  if (kMode == kMulticast) {
    if (threadIdx.x == 0) {
      asm volatile("fence.proxy.async.global;" ::: "memory");
      uint64_t state;
      asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 %0, [%1], %2;"
                   : "=l"(state)
                   : "r"(smemAddr(&bar)), "r"(bytes)
                   : "memory");
      const int slice = bytes / kCluster;
      const uint16_t mask = (1u << kCluster) - 1;
      asm volatile(
          "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1], %2, [%3], "
          "%4;" ::"r"(smemAddr(reinterpret_cast<char*>(staged) + rank * slice)),
          "l"(reinterpret_cast<const char*>(in) + rank * slice), "r"(slice), "r"(smemAddr(&bar)), "h"(mask)
          : "memory");
    }
    uint32_t done = 0;
    while (!done)
      asm volatile(
          "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\nselp.u32 %0, 1, 0, p;\n}"
          : "=r"(done)
          : "r"(smemAddr(&bar))
          : "memory");
    for (int k = threadIdx.x; k < copies * kLen / 4; k += kThreads) {
      const float4 v = staged[k];
      sum += (v.x + v.y) + (v.z + v.w);
      squares = fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, squares))));
    }
  } else {
    float4 v[kMaxCopies];
#pragma unroll
    for (int c = 0; c < kMaxCopies; ++c)
      v[c] = c < copies ? __ldcg(reinterpret_cast<const float4*>(in + c * kLen) + threadIdx.x)
                        : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int c = 0; c < kMaxCopies; ++c) {
      sum += (v[c].x + v[c].y) + (v[c].z + v[c].w);
      squares = fmaf(v[c].x, v[c].x, fmaf(v[c].y, v[c].y, fmaf(v[c].z, v[c].z, fmaf(v[c].w, v[c].w, squares))));
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    sum += __shfl_xor_sync(~0u, sum, o);
    squares += __shfl_xor_sync(~0u, squares, o);
  }
  if ((threadIdx.x & 31) == 0) red[2 * (threadIdx.x >> 5)] = sum, red[2 * (threadIdx.x >> 5) + 1] = squares;
  __syncthreads();
  sum = squares = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) sum += red[2 * w], squares += red[2 * w + 1];
  // The next kernel's input: this block's 8 floats of every copy (kernels 256 threads,
  // 1024 / 128 blocks = 8).
  if (threadIdx.x < 8 * copies) {
    const int c = threadIdx.x / 8, j = threadIdx.x % 8;
    out[c * kLen + blockIdx.x * 8 + j] = 1e-6f * (sum + squares) + static_cast<float>(j);
  }
}

double run(int mode, int copies, float* vec, cudaStream_t s) {
  const void* kernels[3] = {reinterpret_cast<const void*>(stageStep<kPlain>),
                            reinterpret_cast<const void*>(stageStep<kClusterPlain>),
                            reinterpret_cast<const void*>(stageStep<kMulticast>)};
  cudaGraph_t g;
  cudaGraphExec_t ge;
  const int n = 500;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < n; ++i) {
    LaunchConfig l(dim3(kBlocks), dim3(kThreads), s, true, mode != kPlain ? kCluster : 0);
    void* args[] = {&vec, &i, &copies};
    CK(cudaLaunchKernelExC(&l.cfg, kernels[mode], args));
  }
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  const Timing t = timeGraph(ge, s);
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  return t.mean / n;
}

}  // namespace

int main() {
  float* vec;
  CK(cudaMalloc(&vec, 2 * kMaxCopies * kLen * sizeof(float)));
  CK(cudaMemset(vec, 0, 2 * kMaxCopies * kLen * sizeof(float)));
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  const char* names[3] = {"plain", "cluster", "multicast"};
  for (int rep = 0; rep < 2; ++rep)
    for (int copies : {1, 5})
      for (int mode = 0; mode < 3; ++mode)
        printf("%-10s %d x 4 KB: %.3f us per kernel\n", names[mode], copies, run(mode, copies, vec, s));
  return 0;
}
