// Row-wise softmax cross-entropy with its gradient written in place; see softmax_xent.h.
// One 1024-thread block per row: each thread loads its (at most eight) 16-byte vectors
// once into registers, the block reduces an online (max, sum of exp) pair, and the same
// registers give the gradient, so the row crosses HBM once each way.
#include "kernels/softmax_xent/softmax_xent.h"

#include <cmath>
#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/status_internal.h"

namespace {

constexpr int kThreads = 1024;
constexpr int kPerVector = 8;  // 16-bit elements per 16-byte load
constexpr int kVectorsPerThread = WB_SOFTMAX_XENT_MAX_COLUMNS / (kThreads * kPerVector);
constexpr int kWarps = kThreads / 32;

using wbk::fromFloat;
using wbk::toFloat;

// Merges two (max, sum of exp(x - max)) pairs; a pair with max -inf holds nothing.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float mx = fmaxf(m, m2);
  if (mx == -INFINITY) return;
  s = s * __expf(m - mx) + s2 * __expf(m2 - mx);
  m = mx;
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 1)
    softmaxXentKernel(T* __restrict__ logits, const int64_t* __restrict__ targets, const float* __restrict__ valid,
                      float* __restrict__ rowLoss, int vocab, int ld, int writeGrad) {
  const int row = blockIdx.x;
  T* x = logits + static_cast<size_t>(row) * ld;
  const int vectors = ld / kPerVector;
  const int64_t target = targets[row];
  const bool targetOk = target >= 0 && target < vocab;
  __shared__ float targetLogit;
  __shared__ float warpMax[kWarps], warpSum[kWarps];
  // Read before any thread of the block may overwrite the row (the reduction's
  // __syncthreads separates this read from the gradient stores).
  if (threadIdx.x == 0) targetLogit = targetOk ? toFloat(x[target]) : NAN;

  uint4 cache[kVectorsPerThread];
  float m = -INFINITY, s = 0.f;
#pragma unroll
  for (int i = 0; i < kVectorsPerThread; ++i) {
    const int v = threadIdx.x + i * kThreads;
    if (v >= vectors) break;
    cache[i] = reinterpret_cast<const uint4*>(x)[v];
    const T* e = reinterpret_cast<const T*>(&cache[i]);
    float f[kPerVector], vm = -INFINITY;
#pragma unroll
    for (int j = 0; j < kPerVector; ++j) {
      f[j] = v * kPerVector + j < vocab ? toFloat(e[j]) : -INFINITY;
      vm = fmaxf(vm, f[j]);
    }
    float vs = 0.f;
    if (vm != -INFINITY) {
#pragma unroll
      for (int j = 0; j < kPerVector; ++j) vs += __expf(f[j] - vm);
    }
    merge(m, s, vm, vs);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), s2 = __shfl_xor_sync(0xffffffffu, s, off);
    merge(m, s, m2, s2);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warpMax[warp] = m;
    warpSum[warp] = s;
  }
  __syncthreads();
  m = lane < kWarps ? warpMax[lane] : -INFINITY;
  s = lane < kWarps ? warpSum[lane] : 0.f;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), s2 = __shfl_xor_sync(0xffffffffu, s, off);
    merge(m, s, m2, s2);
  }
  // Every warp now holds the row's pair.
  const float w = valid[row];
  if (threadIdx.x == 0) rowLoss[row] = w * (m + logf(s) - targetLogit);
  if (!writeGrad) return;
  const float invSum = 1.f / s;
#pragma unroll
  for (int i = 0; i < kVectorsPerThread; ++i) {
    const int v = threadIdx.x + i * kThreads;
    if (v >= vectors) break;
    const T* e = reinterpret_cast<const T*>(&cache[i]);
    uint4 out;
    T* o = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int j = 0; j < kPerVector; ++j) {
      const int col = v * kPerVector + j;
      float p = col < vocab ? __expf(toFloat(e[j]) - m) * invSum : 0.f;
      if (col == target) p -= w;
      o[j] = fromFloat<T>(p);
    }
    reinterpret_cast<uint4*>(x)[v] = out;
  }
}

}  // namespace

extern "C" WbStatus wbSoftmaxXent(const WbSoftmaxXentParams* p, cudaStream_t stream) {
  if (p == nullptr) return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "softmax xent: params is NULL");
  if (p->logits == nullptr || p->targets == nullptr || p->valid == nullptr || p->rowLoss == nullptr)
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "softmax xent: logits, targets, valid and rowLoss must be set");
  if (p->rows < 0 || p->vocab < 1 || p->ld < p->vocab)
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "softmax xent: rows %d, vocab %d, ld %d (need vocab >= 1, ld >= vocab)",
                     p->rows, p->vocab, p->ld);
  if (p->ld % kPerVector != 0 || p->ld > WB_SOFTMAX_XENT_MAX_COLUMNS)
    return wbk::fail(WB_STATUS_UNSUPPORTED, "softmax xent: ld %d must be a multiple of %d and at most %d", p->ld,
                     kPerVector, WB_SOFTMAX_XENT_MAX_COLUMNS);
  if (reinterpret_cast<uintptr_t>(p->logits) % 16 != 0)
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "softmax xent: logits must be 16-byte aligned");
  if (p->rows == 0) return WB_STATUS_OK;
  const dim3 grid(static_cast<unsigned>(p->rows)), block(kThreads);
  if (p->dtype == WB_DTYPE_BF16)
    softmaxXentKernel<__nv_bfloat16><<<grid, block, 0, stream>>>(static_cast<__nv_bfloat16*>(p->logits), p->targets,
                                                                  p->valid, p->rowLoss, p->vocab, p->ld, p->writeGrad);
  else if (p->dtype == WB_DTYPE_F16)
    softmaxXentKernel<__half><<<grid, block, 0, stream>>>(static_cast<__half*>(p->logits), p->targets, p->valid,
                                                          p->rowLoss, p->vocab, p->ld, p->writeGrad);
  else
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "softmax xent: dtype must be fp16 or bf16");
  return wbk::checkLaunch("softmax xent launch");
}
