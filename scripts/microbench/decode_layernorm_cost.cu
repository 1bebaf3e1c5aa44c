// Micro-benchmark (issue 7, docs/PERF.md "Block shape, carveout and one-pass LayerNorm"):
// the post-wait work of a LayerNorm + GEMV kernel in a chain of 60 programmatic launches
// (12-warp / 6-warp blocks, 15% carveout): input through shared memory with and without
// the two-pass LayerNorm, without the dot, and input in registers with a warp-shuffle
// LayerNorm. Not part of the build:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o decode_layernorm_cost decode_layernorm_cost.cu
#include <cuda_fp16.h>

#include "chain_support.cuh"
#include <cstdio>
#include <cstdint>
#include <vector>
#include <cmath>
struct P { const __half* x; __half* y; const __half* w; int n; };

__device__ __forceinline__ float warpSum(float v) { for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(~0u, v, o); return v; }
__device__ __forceinline__ float blockSum(float v, float* red) {
  v = warpSum(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float t = 0.f; for (int i = 0; i < (int)(blockDim.x >> 5); ++i) t += red[i];
  return t;
}
__device__ __forceinline__ float dot8(uint4 w, const float* x) {
  const __half2* h = reinterpret_cast<const __half2*>(&w); float a = 0.f;
  for (int e = 0; e < 4; ++e) { float2 f = __half22float2(h[e]); a = fmaf(f.x, x[2 * e], a); a = fmaf(f.y, x[2 * e + 1], a); }
  return a;
}
template <int kVar>
__global__ void __launch_bounds__(384) step(P p) {
  __shared__ __align__(16) float sx[768];
  __shared__ float red[12];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const int row = blockIdx.x * warps + warp;
  uint4 w[3];
  for (int v = 0; v < 3; ++v) w[v] = __ldcs(reinterpret_cast<const uint4*>(p.w + (size_t)row * 768) + lane + 32 * v);
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  float acc = 0.f;
  if (kVar <= 2) {
    if (threadIdx.x < 96) {
      uint4 raw = __ldcg(reinterpret_cast<const uint4*>(p.x) + threadIdx.x);
      const __half2* h = reinterpret_cast<const __half2*>(&raw);
      for (int e = 0; e < 4; ++e) { float2 f = __half22float2(h[e]); sx[threadIdx.x * 8 + 2 * e] = f.x; sx[threadIdx.x * 8 + 2 * e + 1] = f.y; }
    }
    __syncthreads();
    if (kVar == 0 || kVar == 2) {  // two-pass LayerNorm over shared memory, as the decode kernels
      float s = 0.f; for (int i = threadIdx.x; i < 768; i += blockDim.x) s += sx[i];
      const float mean = blockSum(s, red) / 768.f;
      float q = 0.f; for (int i = threadIdx.x; i < 768; i += blockDim.x) { float d = sx[i] - mean; q += d * d; }
      const float rstd = rsqrtf(blockSum(q, red) / 768.f + 1e-5f);
      for (int i = threadIdx.x; i < 768; i += blockDim.x) sx[i] = (sx[i] - mean) * rstd;
      __syncthreads();
      if (kVar == 2) { if (lane == 0) p.y[row] = __float2half(tanhf(sx[row % 768])); return; }
    }
    for (int v = 0; v < 3; ++v) acc += dot8(w[v], sx + (lane + 32 * v) * 8);
  } else {  // registers: each lane loads the input chunks its weights meet
    float x[3][8];
    for (int v = 0; v < 3; ++v) {
      uint4 raw = __ldcg(reinterpret_cast<const uint4*>(p.x) + lane + 32 * v);
      const __half2* h = reinterpret_cast<const __half2*>(&raw);
      for (int e = 0; e < 4; ++e) { float2 f = __half22float2(h[e]); x[v][2 * e] = f.x; x[v][2 * e + 1] = f.y; }
    }
    if (kVar == 4) {  // LayerNorm with warp shuffles only
      float s = 0.f; for (int v = 0; v < 3; ++v) for (int e = 0; e < 8; ++e) s += x[v][e];
      const float mean = warpSum(s) / 768.f;
      float q = 0.f; for (int v = 0; v < 3; ++v) for (int e = 0; e < 8; ++e) { float d = x[v][e] - mean; q += d * d; }
      const float rstd = rsqrtf(warpSum(q) / 768.f + 1e-5f);
      for (int v = 0; v < 3; ++v) for (int e = 0; e < 8; ++e) x[v][e] = (x[v][e] - mean) * rstd;
    }
    for (int v = 0; v < 3; ++v) acc += dot8(w[v], x[v]);
  }
  acc = warpSum(acc);
  if (lane == 0) p.y[row] = __float2half(tanhf(acc * 0.03f));
}

int main() {
  const int kernels = 60;
  const int nOf[4] = {2304, 768, 3072, 768}, warpsOf[4] = {12, 6, 12, 6};
  const std::vector<__half*> W = makeWeights(kernels, nOf);
  __half* buf[2];
  for (auto& b : buf) { CK(cudaMalloc(&b, 3072 * 2)); CK(cudaMemset(b, 0, 3072 * 2)); }
  cudaStream_t st; CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  void (*fn[5])(P) = {step<0>, step<1>, step<2>, step<3>, step<4>};
  const char* names[5] = {"x to smem, 2-pass LN, dot (as decode)", "x to smem, dot (no LN)", "x to smem, 2-pass LN, no dot", "x to registers, dot (no LN, no smem)", "x to registers, warp-shuffle LN, dot"};
  for (int mode = 0; mode < 5; ++mode) {
    cudaGraph_t g; cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    for (int i = 0; i < kernels; ++i) {
      P p{buf[i % 2 ? 0 : 1], buf[i % 2], W[i], nOf[i % 4]};
      cudaLaunchConfig_t cfg = {};
      cfg.gridDim = dim3(nOf[i % 4] / warpsOf[i % 4]); cfg.blockDim = dim3(32 * warpsOf[i % 4]); cfg.stream = st;
      cudaLaunchAttribute a[2]; a[0].id = cudaLaunchAttributeProgrammaticStreamSerialization; a[0].val.programmaticStreamSerializationAllowed = 1;
      a[1].id = cudaLaunchAttributePreferredSharedMemoryCarveout; a[1].val.sharedMemCarveout = 15;
      cfg.attrs = a; cfg.numAttrs = 2;
      void* args[] = {&p};
      CK(cudaLaunchKernelExC(&cfg, (const void*)fn[mode], args));
    }
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const Timing t = timeGraph(ge, st);
    const double m = t.mean, s = t.std;
    printf("%-42s %d kernels: %8.2f +- %.2f us/step, %.3f us/kernel\n", names[mode], kernels, m, s, m / kernels);
  }
  return 0;
}
