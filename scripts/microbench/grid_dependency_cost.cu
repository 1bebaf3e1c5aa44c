// Micro-benchmark (issue 7, docs/PERF.md "Where an int4 decode kernel's time goes"): what
// one grid-wide dependency costs, one block an SM, three ways: a persistent kernel with a
// monotonic counter barrier (red.release + ld.acquire spin), the same with per-block flags
// polled by every block, and a CUDA graph of kernels with and without programmatic launch;
// each alone and with a 4 KB vector exchange (every block writes 8 floats, then reads all
// 1024 from L2 and sums them over the block), the least a decode kernel does with its
// predecessor's output. Not part of the build:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o grid_dependency_cost grid_dependency_cost.cu
#include <cuda_runtime.h>

#include <cstdio>

#include "chain_support.cuh"
typedef unsigned long long u64;
__device__ __forceinline__ void arriveRel(u64* c) {
  asm volatile("red.release.gpu.global.add.u64 [%0], 1;" ::"l"(c) : "memory");
}
__device__ __forceinline__ u64 ldAcq(const u64* c) {
  u64 v;
  asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(c) : "memory");
  return v;
}
__device__ __forceinline__ void stRel(u64* c, u64 v) {
  asm volatile("st.release.gpu.global.u64 [%0], %1;" ::"l"(c), "l"(v) : "memory");
}

__device__ float exchange(float* vec, int i, float acc, bool write, float* red) {
  float* v = vec + (i & 1) * 1024;
  if (write) {
    if (threadIdx.x < 8 && blockIdx.x < 128) v[blockIdx.x * 8 + threadIdx.x] = acc + i;
    return acc;
  }
  float s = 0;
  for (int k = threadIdx.x; k < 1024; k += blockDim.x) s += __ldcg(v + k);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(~0u, s, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
  __syncthreads();
  s = 0;
  for (int w = 0; w < (int)blockDim.x / 32; ++w) s += red[w];
  __syncthreads();
  return s * 1e-9f;
}

__global__ void counterLoop(u64* counter, float* vec, int iters, int work) {
  __shared__ float red[32];
  u64 target = 0;
  float acc = 0;
  for (int i = 0; i < iters; ++i) {
    if (work) exchange(vec, i, acc, true, red);
    __syncthreads();
    target += gridDim.x;
    if (threadIdx.x == 0) {
      arriveRel(counter);
      while (ldAcq(counter) < target) {
      }
    }
    __syncthreads();
    if (work) acc = exchange(vec, i, acc, false, red);
  }
  if (acc == 12345.f) vec[0] = acc;
}

// flags: [gridDim.x] u64, 16 u64 apart (one 128-byte line each)
__global__ void flagLoop(u64* flags, float* vec, int iters, int work) {
  __shared__ float red[32];
  float acc = 0;
  for (int i = 0; i < iters; ++i) {
    if (work) exchange(vec, i, acc, true, red);
    __syncthreads();
    if (threadIdx.x == 0) stRel(flags + 16 * blockIdx.x, (u64)(i + 1));
    if (threadIdx.x < gridDim.x)
      while (ldAcq(flags + 16 * threadIdx.x) < (u64)(i + 1)) {
      }
    __syncthreads();
    if (work) acc = exchange(vec, i, acc, false, red);
  }
  if (acc == 12345.f) vec[0] = acc;
}

__global__ void pdlStep(float* vec, int i, int work) {
  __shared__ float red[32];
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  if (work) {
    float acc = exchange(vec, i - 1, 0.f, false, red);
    exchange(vec, i, acc, true, red);
  }
}

int main() {
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  u64* counter;
  float* vec;
  u64* flags;
  CK(cudaMalloc(&counter, 8));
  CK(cudaMalloc(&vec, 8192));
  CK(cudaMalloc(&flags, 8 * 16 * 256));
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  const int iters = 2000;
  for (int work = 0; work < 2; ++work) {
    for (int rep = 0; rep < 4; ++rep) {
      CK(cudaMemset(counter, 0, 8));
      CK(cudaMemset(flags, 0, 8 * 16 * 256));
      CK(cudaEventRecord(a, s));
      counterLoop<<<sms, 256, 0, s>>>(counter, vec, iters, work);
      CK(cudaEventRecord(b, s));
      CK(cudaEventSynchronize(b));
      float ms;
      CK(cudaEventElapsedTime(&ms, a, b));
      CK(cudaEventRecord(a, s));
      flagLoop<<<sms, 256, 0, s>>>(flags, vec, iters, work);
      CK(cudaEventRecord(b, s));
      CK(cudaEventSynchronize(b));
      float ms2;
      CK(cudaEventElapsedTime(&ms2, a, b));
      printf("work=%d counter barrier %.3f us, flag barrier %.3f us per phase (%d blocks)\n", work,
             ms * 1e3 / iters, ms2 * 1e3 / iters, sms);
    }
    for (int pdl = 0; pdl < 2; ++pdl) {
      cudaGraph_t g;
      cudaGraphExec_t ge;
      const int n = 500;
      CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
      for (int i = 0; i < n; ++i) {
        LaunchConfig l(dim3(sms), dim3(256), s, pdl != 0);
        CK(cudaLaunchKernelEx(&l.cfg, pdlStep, vec, i + 2, work));
      }
      CK(cudaStreamEndCapture(s, &g));
      CK(cudaGraphInstantiate(&ge, g, 0));
      CK(cudaGraphLaunch(ge, s));
      CK(cudaStreamSynchronize(s));
      for (int rep = 0; rep < 3; ++rep) {
        CK(cudaEventRecord(a, s));
        CK(cudaGraphLaunch(ge, s));
        CK(cudaEventRecord(b, s));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        printf("work=%d kernel chain in a graph, pdl=%d: %.3f us per kernel\n", work, pdl,
               ms * 1e3 / n);
      }
    }
  }
  return 0;
}
