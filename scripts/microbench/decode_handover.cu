// Micro-benchmark (issue 7, docs/PERF.md "Block shape, carveout and one-pass LayerNorm"):
// what a dependent kernel costs in a CUDA graph of 60 (or argv[1]) GEMV-shaped kernels
// handing over by grid completion (plain launch, or programmatic launch with
// griddepcontrol.wait) against a release/acquire block counter, and what the post-wait
// work adds (one dependent load, a store only, L2-resident weights). Not part of the
// build: nvcc -O3 -std=c++17 -arch=sm_90a -o decode_handover decode_handover.cu
#include <cuda_fp16.h>

#include "chain_support.cuh"
#include <cstdio>
#include <cstdint>
#include <vector>
#include <cmath>


struct P {
  const __half* x; __half* y; const __half* w; int n, k;
  unsigned long long* counter; unsigned long long* base; unsigned long long cumPrev, total; int last;
};

template <int kMode>
__global__ void __launch_bounds__(256) step(P p) {
  __shared__ float sx[768];
  __shared__ float red[8];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const int row = blockIdx.x * warps + warp;
  uint4 w[3];
  for (int v = 0; v < 3; ++v) w[v] = __ldcs(reinterpret_cast<const uint4*>(p.w + (size_t)row * p.k) + lane + 32 * v);
  if (kMode >= 4) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    if (lane == 0) p.y[row] = kMode == 4 ? __ldcg(p.x + row % 768) : __float2half(1.f);
    return;
  }
  unsigned long long b = 0;
  if (kMode >= 2) b = *(volatile unsigned long long*)p.base;
  if (kMode == 3) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  if (kMode <= 1 || kMode >= 4) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
  } else {
    if (threadIdx.x == 0) {
      unsigned long long seen;
      do { asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(seen) : "l"(p.counter) : "memory"); } while (seen < b + p.cumPrev);
    }
    __syncthreads();
  }
  if (kMode != 3) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  float s = 0.f, q = 0.f;
  if (threadIdx.x < 96) {
    uint4 raw = __ldcg(reinterpret_cast<const uint4*>(p.x) + threadIdx.x);
    const __half2* h = reinterpret_cast<const __half2*>(&raw);
    for (int e = 0; e < 4; ++e) { float2 f = __half22float2(h[e]); sx[threadIdx.x * 8 + 2 * e] = f.x; sx[threadIdx.x * 8 + 2 * e + 1] = f.y; s += f.x + f.y; q += f.x * f.x + f.y * f.y; }
  }
  for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(~0u, s, o);
  if (lane == 0) red[warp] = s;
  __syncthreads();
  float mean = 0.f; for (int i = 0; i < warps; ++i) mean += red[i]; mean /= 768.f;
  __syncthreads();
  for (int o = 16; o; o >>= 1) q += __shfl_xor_sync(~0u, q, o);
  if (lane == 0) red[warp] = q;
  __syncthreads();
  float var = 0.f; for (int i = 0; i < warps; ++i) var += red[i]; var = var / 768.f - mean * mean;
  const float inv = rsqrtf(var + 1e-5f);
  float acc = 0.f;
  for (int v = 0; v < 3; ++v) {
    const __half2* h = reinterpret_cast<const __half2*>(&w[v]);
    const int c = (lane + 32 * v) * 8;
    for (int e = 0; e < 4; ++e) { float2 f = __half22float2(h[e]); acc += f.x * (sx[c + 2 * e] - mean) * inv + f.y * (sx[c + 2 * e + 1] - mean) * inv; }
  }
  for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(~0u, acc, o);
  if (lane == 0) p.y[row] = __float2half(tanhf(acc * 0.03f));
  if (kMode >= 2) {
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long old;
      asm volatile("atom.add.release.gpu.global.u64 %0, [%1], 1;" : "=l"(old) : "l"(p.counter) : "memory");
      if (p.last && old + 1 == b + p.total) *(volatile unsigned long long*)p.base = b + p.total;
    }
  }
}

int main(int argc, char** argv) {
  const int kernels = argc > 1 ? atoi(argv[1]) : 60;
  const int nOf[4] = {2304, 768, 3072, 768}, warpsOf[4] = {8, 3, 8, 3};
  const std::vector<__half*> W = makeWeights(kernels, nOf);
  size_t total = 0;
  for (int i = 0; i < kernels; ++i) total += nOf[i % 4] / warpsOf[i % 4];
  __half *buf[2];
  for (auto& b : buf) { CK(cudaMalloc(&b, 3072 * 2)); CK(cudaMemset(b, 0, 3072 * 2)); }
  unsigned long long* ctr; CK(cudaMalloc(&ctr, 16));
  cudaStream_t st; CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  void (*fn[7])(P) = {step<0>, step<1>, step<2>, step<3>, step<4>, step<5>, step<1>};
  const char* names[7] = {"no PDL, grid completion", "PDL + griddepcontrol.wait", "PDL + counter spin, release after spin", "PDL + counter spin, release at start", "PDL + wait, one load + store", "PDL + wait, store only", "PDL + wait, weights L2-resident (one set)"};
  for (int mode = 0; mode < 7; ++mode) {
    CK(cudaMemset(ctr, 0, 16));
    cudaGraph_t g; cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    unsigned long long cum = 0;
    for (int i = 0; i < kernels; ++i) {
      P p{buf[i % 2 ? 0 : 1], buf[i % 2], mode == 6 ? W[i % 4] : W[i], nOf[i % 4], 768, ctr, ctr + 1, cum, total, i == kernels - 1};
      cudaLaunchConfig_t cfg = {};
      cfg.gridDim = dim3(nOf[i % 4] / warpsOf[i % 4]); cfg.blockDim = dim3(32 * warpsOf[i % 4]); cfg.stream = st;
      cudaLaunchAttribute a[1]; a[0].id = cudaLaunchAttributeProgrammaticStreamSerialization; a[0].val.programmaticStreamSerializationAllowed = 1;
      cfg.attrs = a; cfg.numAttrs = mode ? 1 : 0;
      void* args[] = {&p};
      CK(cudaLaunchKernelExC(&cfg, (const void*)fn[mode], args));
      cum += nOf[i % 4] / warpsOf[i % 4];
    }
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const Timing t = timeGraph(ge, st);
    const double m = t.mean, s = t.std;
    unsigned long long hc[2]; CK(cudaMemcpy(hc, ctr, 16, cudaMemcpyDeviceToHost));
    printf("%-45s %d kernels: %8.2f +- %.2f us/step, %.3f us/kernel (counter %llu base %llu)\n", names[mode], kernels, m, s, m / kernels, hc[0], hc[1]);
  }
  return 0;
}
