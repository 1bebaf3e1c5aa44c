// Row-wise softmax cross-entropy with its gradient written in place; see softmax_xent.h.
// One 1024-thread block per row. The row's 16-byte vectors are read once and staged in
// shared memory: two 100 KB rows per SM at GPT-2's vocabulary, so one row's loads
// overlap the other's reduction and stores (holding the row in registers instead allows
// one row per SM and measured 1.26x slower: docs/PERF.md). The block reduces an online
// (max, sum of exp) pair, and the staged vectors give the gradient: the row crosses HBM
// once each way.
#include "kernels/softmax_xent/softmax_xent.h"

#include <cmath>
#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/status_internal.h"

namespace {

constexpr int kThreads = 1024;
constexpr int kPerVector = 8;  // 16-bit elements per 16-byte load
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

// Folds vector v (columns 8 v .. 8 v + 7) into the thread's pair; padding is -inf.
template <typename T>
__device__ __forceinline__ void accumulate(const uint4& vec, int v, int vocab, float& m, float& s) {
  const T* e = reinterpret_cast<const T*>(&vec);
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

// softmax - w onehot(target) of vector v, rounded once.
template <typename T>
__device__ __forceinline__ uint4 gradient(const uint4& vec, int v, int vocab, int64_t target, float w, float m,
                                          float invSum) {
  const T* e = reinterpret_cast<const T*>(&vec);
  uint4 out;
  T* o = reinterpret_cast<T*>(&out);
#pragma unroll
  for (int j = 0; j < kPerVector; ++j) {
    const int col = v * kPerVector + j;
    float p = col < vocab ? __expf(toFloat(e[j]) - m) * invSum : 0.f;
    if (col == target) p -= w;
    o[j] = fromFloat<T>(p);
  }
  return out;
}

// The block's (max, sum) pair, in every thread.
__device__ __forceinline__ void blockReduce(float& m, float& s) {
  __shared__ float warpMax[kWarps], warpSum[kWarps];
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
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 2)
    softmaxXentKernel(T* __restrict__ logits, const int64_t* __restrict__ targets, const float* __restrict__ valid,
                      float* __restrict__ rowLoss, int vocab, int ld, int writeGrad) {
  extern __shared__ uint4 staged[];
  const int row = blockIdx.x;
  T* x = logits + static_cast<size_t>(row) * ld;
  uint4* xv = reinterpret_cast<uint4*>(x);
  const int vectors = ld / kPerVector;
  const int64_t target = targets[row];
  const bool targetOk = target >= 0 && target < vocab;
  __shared__ float targetLogit;
  // Read before any thread of the block may overwrite the row (the reduction's
  // __syncthreads separates this read from the gradient stores).
  if (threadIdx.x == 0) targetLogit = targetOk ? toFloat(x[target]) : NAN;

  float m = -INFINITY, s = 0.f;
  // Four loads in flight per thread before their exps.
#pragma unroll 4
  for (int v = threadIdx.x; v < vectors; v += kThreads) {
    const uint4 vec = xv[v];
    staged[v] = vec;
    accumulate<T>(vec, v, vocab, m, s);
  }
  blockReduce(m, s);
  const float w = valid[row];
  if (threadIdx.x == 0) rowLoss[row] = w * (m + logf(s) - targetLogit);
  if (!writeGrad) return;
  const float invSum = 1.f / s;
  // Each thread reads back only the vectors it staged: no barrier needed.
#pragma unroll 4
  for (int v = threadIdx.x; v < vectors; v += kThreads) xv[v] = gradient<T>(staged[v], v, vocab, target, w, m, invSum);
}

template <typename T>
WbStatus launch(const WbSoftmaxXentParams* p, cudaStream_t stream) {
  const size_t rowBytes = static_cast<size_t>(p->ld) * sizeof(T);
  const auto kernel = softmaxXentKernel<T>;
  // Above 48 KB of dynamic shared memory a kernel must opt in; cheap, so per launch.
  const cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(rowBytes));
  if (err != cudaSuccess)
    return wbk::fail(WB_STATUS_CUDA_ERROR, "softmax xent: %zu bytes of shared memory per row: %s", rowBytes,
                     cudaGetErrorString(err));
  kernel<<<dim3(static_cast<unsigned>(p->rows)), dim3(kThreads), rowBytes, stream>>>(
      static_cast<T*>(p->logits), p->targets, p->valid, p->rowLoss, p->vocab, p->ld, p->writeGrad);
  return wbk::checkLaunch("softmax xent launch");
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
  if (p->dtype == WB_DTYPE_BF16) return launch<__nv_bfloat16>(p, stream);
  if (p->dtype == WB_DTYPE_F16) return launch<__half>(p, stream);
  return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "softmax xent: dtype must be fp16 or bf16");
}
