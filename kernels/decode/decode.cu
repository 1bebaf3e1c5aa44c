// Fused batch-1 decode kernels; see decode.h.
// GEMV: 64-256 threads, rows owned by lane groups (32 lanes per fp16 row, 8 or 32 per
// int4 row), 16-byte streaming weight loads; the first pass of each row's weights (and
// the LayerNorm parameters, bias and residual element) is issued before
// griddepcontrol.wait, so with programmatic launch it overlaps the previous kernel.
// The input vector is rebuilt in shared memory by every block (at most a few KB).
// Rounding follows the eager LibTorch fp16 path: LayerNorm, GEMV + bias, GELU and
// residual outputs are each rounded to fp16 once, products accumulate in fp32.
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>

#include "kernels/common/status_internal.h"
#include "kernels/decode/decode.h"

namespace wbk {
namespace {

constexpr int kMaxWarps = 8;  // warps per GEMV block: 2 .. 8, chosen so that >= 2 blocks land per SM
constexpr int kSplitKeys = 64;
constexpr float kLog2e = 1.4426950408889634f;

// Programmatic dependent launch. Every kernel waits and only then lets its dependents
// start, so a dependent's pre-wait part runs only once everything two kernels back has
// finished: that is what makes reading the position (written by the previous step's
// argmax) before the wait safe in the attention kernel.
__device__ __forceinline__ void waitForPrevious() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void releaseDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ __half2 asHalf2(uint32_t v) { return *reinterpret_cast<__half2*>(&v); }
__device__ __forceinline__ uint32_t asU32(__half2 v) { return *reinterpret_cast<uint32_t*>(&v); }
__device__ __forceinline__ float roundHalf(float v) { return __half2float(__float2half_rn(v)); }

__device__ __forceinline__ uint32_t lop3Nibbles(uint32_t w) {
  uint32_t out;  // (w & 0x000F000F) | 0x64006400: two fp16 values 1024 + nibble
  asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(out) : "r"(w), "r"(0x000F000Fu), "r"(0x64006400u));
  return out;
}

// Eight fp16 values from a 16-byte activation chunk (L2 only: written by another kernel).
__device__ __forceinline__ void load8(const __half* src, float f[8]) {
  const uint4 raw = __ldcg(reinterpret_cast<const uint4*>(src));
  const uint32_t* r = reinterpret_cast<const uint32_t*>(&raw);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float2 v = __half22float2(asHalf2(r[e]));
    f[2 * e] = v.x;
    f[2 * e + 1] = v.y;
  }
}

__device__ __forceinline__ float blockSum(float v, float* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // scratch may still be read from the previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += scratch[w];
  return total;
}

__device__ __forceinline__ float geluTanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
}

template <bool kInt4, int kLanesPerRow>
struct RowLayout {
  static constexpr int kLanes = kLanesPerRow;  // lanes sharing one output row (8 or 32)
  static constexpr int kRowsPerWarp = 32 / kLanes;
  static constexpr int kInputsPerChunk = kInt4 ? 32 : 8;  // inputs behind one 16-byte load
};

// Builds the block's input vector in shared memory: fp32 [K] for fp16 weights, or for
// int4 the fp16 pairs (x0,x4),(x1,x5),.. of each 8-input chunk kc = 4c + e at slot
// e * K/32 + c, the order the nibble trick produces (as kernels/int4_matmul).
template <int kIn, bool kInt4>
__device__ void stageInput(const WbDecodeLinearParams& p, float* sx, uint4* sxq, const __half* sln, float* scratch) {
  const int k = p.k, chunks8 = k / 8;
  const int64_t pos = (kIn == WB_DECODE_IN_EMBED || kIn == WB_DECODE_IN_ATTENTION) ? __ldcg(p.position) : 0;
  for (int kc = threadIdx.x; kc < chunks8; kc += blockDim.x) {
    float f[8];
    if (kIn == WB_DECODE_IN_EMBED) {
      float a[8], b[8];
      const int64_t tok = __ldcg(p.token);
      load8(static_cast<const __half*>(p.wte) + tok * k + kc * 8, a);
      load8(static_cast<const __half*>(p.wpe) + pos * k + kc * 8, b);
#pragma unroll
      for (int i = 0; i < 8; ++i) f[i] = roundHalf(a[i] + b[i]);
      if (blockIdx.x == 0) {
        uint4 out;
        out.x = asU32(__floats2half2_rn(f[0], f[1]));
        out.y = asU32(__floats2half2_rn(f[2], f[3]));
        out.z = asU32(__floats2half2_rn(f[4], f[5]));
        out.w = asU32(__floats2half2_rn(f[6], f[7]));
        *reinterpret_cast<uint4*>(static_cast<__half*>(p.residual) + kc * 8) = out;
      }
    } else if (kIn == WB_DECODE_IN_ATTENTION) {
      const int d0 = kc * 8 % p.headDim, h = kc * 8 / p.headDim;
      const int splits = min(static_cast<int>(pos / kSplitKeys) + 1, p.attnSplits);
      const float* ml = p.attnMl + static_cast<int64_t>(h) * p.attnSplits * 2;
      float m = -FLT_MAX;
      for (int s = 0; s < splits; ++s) m = fmaxf(m, __ldcg(ml + 2 * s));
      float l = 0.f;
#pragma unroll
      for (int i = 0; i < 8; ++i) f[i] = 0.f;
      for (int s = 0; s < splits; ++s) {
        const float w = exp2f(__ldcg(ml + 2 * s) - m);
        l += w * __ldcg(ml + 2 * s + 1);
        const float4* o =
            reinterpret_cast<const float4*>(p.attnO + (static_cast<int64_t>(h) * p.attnSplits + s) * p.headDim + d0);
        const float4 o0 = __ldcg(o), o1 = __ldcg(o + 1);
        f[0] += w * o0.x, f[1] += w * o0.y, f[2] += w * o0.z, f[3] += w * o0.w;
        f[4] += w * o1.x, f[5] += w * o1.y, f[6] += w * o1.z, f[7] += w * o1.w;
      }
      const float inv = 1.f / l;
#pragma unroll
      for (int i = 0; i < 8; ++i) f[i] = roundHalf(f[i] * inv);
    } else {
      load8(static_cast<const __half*>(p.x) + kc * 8, f);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) sx[kc * 8 + i] = f[i];
  }
  if (kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_EMBED) {
    // Two passes over shared memory (mean, then centred squares) as LibTorch's
    // LayerNorm does in fp32; E[x^2] - mean^2 would cancel on the residual stream.
    __syncthreads();
    float s = 0.f;
    for (int i = threadIdx.x; i < k; i += blockDim.x) s += sx[i];
    const float mean = blockSum(s, scratch) / static_cast<float>(k);
    float q = 0.f;
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
      const float d = sx[i] - mean;
      q += d * d;
    }
    const float rstd = rsqrtf(blockSum(q, scratch) / static_cast<float>(k) + p.lnEps);
    const __half* g = sln;  // LayerNorm weight and bias, staged before the wait
    const __half* b = sln + k;
    for (int i = threadIdx.x; i < k; i += blockDim.x)
      sx[i] = roundHalf((sx[i] - mean) * rstd * __half2float(g[i]) + __half2float(b[i]));
  }
  if (kInt4) {
    __syncthreads();
    const int chunks32 = k / 32;
    for (int kc = threadIdx.x; kc < chunks8; kc += blockDim.x) {
      const float* f = sx + kc * 8;
      uint4 out;
      out.x = asU32(__floats2half2_rn(f[0], f[4]));
      out.y = asU32(__floats2half2_rn(f[1], f[5]));
      out.z = asU32(__floats2half2_rn(f[2], f[6]));
      out.w = asU32(__floats2half2_rn(f[3], f[7]));
      sxq[(kc & 3) * chunks32 + (kc >> 2)] = out;
    }
  }
  __syncthreads();
}

template <int kIn, int kOut, bool kInt4, int kLanesPerRow, int kVmax>
__global__ void __launch_bounds__(kMaxWarps * 32) decodeLinearKernel(const WbDecodeLinearParams p) {
  using L = RowLayout<kInt4, kLanesPerRow>;
  constexpr bool kNorm = kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_EMBED;
  extern __shared__ float4 smem[];
  float* sx = reinterpret_cast<float*>(smem);                 // [K]
  uint4* sxq = reinterpret_cast<uint4*>(sx + p.k);            // int4: [K/8]
  __half* sln = reinterpret_cast<__half*>(sxq + (kInt4 ? p.k / 8 : 0));  // LayerNorm: weight [K], bias [K]
  __shared__ float scratch[kMaxWarps];
  __shared__ float bestValue[kMaxWarps];
  __shared__ int bestIndex[kMaxWarps];
  __shared__ bool lastBlock;

  const int k = p.k, n = p.n;
  const int rowChunks = k / L::kInputsPerChunk;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int sub = lane % L::kLanes;
  const int warps = blockDim.x >> 5;
  const int rowsPerBlock = warps * L::kRowsPerWarp;
  const int groups = kInt4 ? k / p.groupSize : 1;
  const int chunksPerGroup = kInt4 ? p.groupSize / 32 : 1;
  int warpRow = blockIdx.x * rowsPerBlock + warp * L::kRowsPerWarp;  // the warp's first row

  uint4 w[kVmax];
  __half scale[kVmax];
  uint8_t zero[kVmax];
  auto load = [&](int row, int base) {
#pragma unroll
    for (int v = 0; v < kVmax; ++v) {
      const int c = base + sub + v * L::kLanes;
      w[v] = make_uint4(0, 0, 0, 0);
      if (row < n && c < rowChunks) {
        if (kInt4) {
          w[v] = __ldcs(reinterpret_cast<const uint4*>(p.qweight + static_cast<int64_t>(row) * (k / 2)) + c);
          const int64_t g = static_cast<int64_t>(row) * groups + c / chunksPerGroup;
          scale[v] = static_cast<const __half*>(p.scales)[g];
          zero[v] = p.zeros ? p.zeros[g] : 8;
        } else {
          w[v] = __ldcs(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.weight) +
                                                        static_cast<int64_t>(row) * k) + c);
        }
      }
    }
  };

  // The weights, LayerNorm parameters and bias are constant: fetch them (the first
  // pass of the weights) before waiting for the producer. The residual a RESIDUAL
  // kernel adds to was last written two or more kernels back, which has finished by
  // the time this kernel may start (see waitForPrevious).
  const int myRow0 = warpRow + lane / L::kLanes;
  load(myRow0, 0);
  if (kNorm)
    for (int c = threadIdx.x; c < k / 8; c += blockDim.x) {
      reinterpret_cast<uint4*>(sln)[c] = __ldg(reinterpret_cast<const uint4*>(p.lnWeight) + c);
      reinterpret_cast<uint4*>(sln + k)[c] = __ldg(reinterpret_cast<const uint4*>(p.lnBias) + c);
    }
  float bias0 = 0.f, residual0 = 0.f;
  if (sub == 0 && myRow0 < n) {
    if (p.bias) bias0 = __half2float(static_cast<const __half*>(p.bias)[myRow0]);
    if (kOut == WB_DECODE_OUT_RESIDUAL) residual0 = __half2float(__ldcg(static_cast<const __half*>(p.y) + myRow0));
  }
  waitForPrevious();
  releaseDependents();
  const int64_t stepPos = kOut == WB_DECODE_OUT_QKV ? __ldcg(p.position) : 0;  // written by the previous step
  stageInput<kIn, kInt4>(p, sx, sxq, sln, scratch);

  float best = -FLT_MAX;
  int bestIdx = 0x7fffffff;
  const int passChunks = kVmax * L::kLanes;
  bool loaded = true;
  for (; warpRow < n; warpRow += gridDim.x * rowsPerBlock) {
    const int row = warpRow + lane / L::kLanes;
    float acc = 0.f;
    for (int base = 0; base < rowChunks; base += passChunks) {
      if (!loaded) load(row, base);
      loaded = false;
#pragma unroll
      for (int v = 0; v < kVmax; ++v) {
        const int c = base + sub + v * L::kLanes;
        if (c >= rowChunks) continue;
        const uint32_t* wa = reinterpret_cast<const uint32_t*>(&w[v]);
        if (kInt4) {
          const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(zero[v]));
          const int chunks32 = k / 32;
          float part = 0.f;
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const uint32_t q = wa[e];
            const uint4 xv = sxq[e * chunks32 + c];
            __half2 a = __hmul2(__hsub2(asHalf2(lop3Nibbles(q)), zz), asHalf2(xv.x));
            a = __hfma2(__hsub2(asHalf2(lop3Nibbles(q >> 4)), zz), asHalf2(xv.y), a);
            a = __hfma2(__hsub2(asHalf2(lop3Nibbles(q >> 8)), zz), asHalf2(xv.z), a);
            a = __hfma2(__hsub2(asHalf2(lop3Nibbles(q >> 12)), zz), asHalf2(xv.w), a);
            const float2 f = __half22float2(a);
            part += f.x + f.y;
          }
          acc = fmaf(part, __half2float(scale[v]), acc);
        } else {
          const float4* xs = reinterpret_cast<const float4*>(sx + c * 8);
          const float4 x0 = xs[0], x1 = xs[1];
          const float2 w0 = __half22float2(asHalf2(wa[0])), w1 = __half22float2(asHalf2(wa[1]));
          const float2 w2 = __half22float2(asHalf2(wa[2])), w3 = __half22float2(asHalf2(wa[3]));
          acc = fmaf(w0.x, x0.x, acc);
          acc = fmaf(w0.y, x0.y, acc);
          acc = fmaf(w1.x, x0.z, acc);
          acc = fmaf(w1.y, x0.w, acc);
          acc = fmaf(w2.x, x1.x, acc);
          acc = fmaf(w2.y, x1.y, acc);
          acc = fmaf(w3.x, x1.z, acc);
          acc = fmaf(w3.y, x1.w, acc);
        }
      }
    }
#pragma unroll
    for (int o = L::kLanes / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (sub != 0 || row >= n) continue;
    const bool first = row == myRow0;
    const float b = first ? bias0 : p.bias ? __half2float(static_cast<const __half*>(p.bias)[row]) : 0.f;
    const __half out = __float2half_rn(acc + b);
    __half* y = static_cast<__half*>(p.y);
    if (kOut == WB_DECODE_OUT_STORE) {
      y[row] = out;
    } else if (kOut == WB_DECODE_OUT_GELU) {
      y[row] = __float2half_rn(geluTanh(__half2float(out)));
    } else if (kOut == WB_DECODE_OUT_RESIDUAL) {
      const float res = first ? residual0 : __half2float(__ldcg(y + row));
      y[row] = __float2half_rn(res + __half2float(out));
    } else if (kOut == WB_DECODE_OUT_QKV) {
      const int e = n / 3;
      const int64_t pos = stepPos;
      if (row < e) {
        y[row] = out;
      } else if (pos < p.capacity) {
        const int r = row < 2 * e ? row - e : row - 2 * e;
        const int h = r / p.headDim, d = r % p.headDim;
        __half* cache = static_cast<__half*>(row < 2 * e ? p.kCache : p.vCache);
        cache[(static_cast<int64_t>(h) * p.capacity + pos) * p.headDim + d] = out;
      }
    } else {  // ARGMAX: the first maximum of the fp16 logits, as torch.argmax
      y[row] = out;
      const float v = __half2float(out);
      if (v > best || (v == best && row < bestIdx)) best = v, bestIdx = row;
    }
  }

  if (kOut != WB_DECODE_OUT_ARGMAX) return;
  auto better = [](float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); };
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bestIdx, o);
    if (better(ov, oi, best, bestIdx)) best = ov, bestIdx = oi;
  }
  if (lane == 0) bestValue[warp] = best, bestIndex[warp] = bestIdx;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < warps; ++i)
      if (better(bestValue[i], bestIndex[i], best, bestIdx)) best = bestValue[i], bestIdx = bestIndex[i];
    p.argmaxValues[blockIdx.x] = best;
    p.argmaxIndices[blockIdx.x] = bestIdx;
    __threadfence();
    lastBlock = atomicAdd(p.argmaxCounter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!lastBlock) return;
  // The last block to finish reduces every block's candidate and advances the step.
  __threadfence();
  best = -FLT_MAX;
  bestIdx = 0x7fffffff;
  for (int i = threadIdx.x; i < static_cast<int>(gridDim.x); i += blockDim.x) {
    const float v = __ldcg(p.argmaxValues + i);
    const int idx = __ldcg(p.argmaxIndices + i);
    if (better(v, idx, best, bestIdx)) best = v, bestIdx = idx;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bestIdx, o);
    if (better(ov, oi, best, bestIdx)) best = ov, bestIdx = oi;
  }
  __syncthreads();
  if (lane == 0) bestValue[warp] = best, bestIndex[warp] = bestIdx;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < warps; ++i)
      if (better(bestValue[i], bestIndex[i], best, bestIdx)) best = bestValue[i], bestIdx = bestIndex[i];
    const int64_t pos = __ldcg(p.position) + 1;
    p.nextToken[0] = bestIdx;
    if (pos < p.capacity) p.tokens[pos] = bestIdx;
    *const_cast<int64_t*>(p.position) = pos;
    *p.argmaxCounter = 0u;
  }
}

// One block per (64-key split, head); eight threads per key, each owning eight of the
// 64 dims of q, k and v; a group of eight threads walks four keys with an online
// softmax, then the 16 groups combine in shared memory into one unnormalised partial.
__global__ void __launch_bounds__(128) decodeAttentionKernel(const WbDecodeAttentionParams p) {
  constexpr int D = 64, kGroups = 16, kKeysPerGroup = kSplitKeys / kGroups;
  __shared__ float sm[kGroups], sl[kGroups];
  __shared__ float so[kGroups][D];
  const int s = blockIdx.x, h = blockIdx.y;
  const int g = threadIdx.x >> 3, j = threadIdx.x & 7;
  const int64_t pos = __ldcg(p.position);  // see waitForPrevious
  const int t0 = s * kSplitKeys;
  const __half* kBase = static_cast<const __half*>(p.kCache) + static_cast<int64_t>(h) * p.capacity * D + j * 8;
  const __half* vBase = static_cast<const __half*>(p.vCache) + static_cast<int64_t>(h) * p.capacity * D + j * 8;
  uint4 kr[kKeysPerGroup], vr[kKeysPerGroup];
#pragma unroll
  for (int i = 0; i < kKeysPerGroup; ++i) kr[i] = vr[i] = make_uint4(0, 0, 0, 0);
  // Keys before this step's were written by earlier steps: fetch them before waiting.
#pragma unroll
  for (int i = 0; i < kKeysPerGroup; ++i) {
    const int t = t0 + g + kGroups * i;
    if (t < pos && t < p.capacity) {
      kr[i] = __ldcg(reinterpret_cast<const uint4*>(kBase + static_cast<int64_t>(t) * D));
      vr[i] = __ldcg(reinterpret_cast<const uint4*>(vBase + static_cast<int64_t>(t) * D));
    }
  }
  waitForPrevious();
  releaseDependents();
  if (t0 > pos || pos >= p.capacity) return;  // the consumer reads splits 0 .. pos / 64 only
  float qf[8];
  load8(static_cast<const __half*>(p.q) + h * D + j * 8, qf);
  const float scale = p.scale * kLog2e;
  float score[kKeysPerGroup];
  float m = -FLT_MAX;
#pragma unroll
  for (int i = 0; i < kKeysPerGroup; ++i) {
    const int t = t0 + g + kGroups * i;
    if (t == pos) {
      kr[i] = __ldcg(reinterpret_cast<const uint4*>(kBase + static_cast<int64_t>(t) * D));
      vr[i] = __ldcg(reinterpret_cast<const uint4*>(vBase + static_cast<int64_t>(t) * D));
    }
    const uint32_t* ka = reinterpret_cast<const uint32_t*>(&kr[i]);
    float dot = 0.f;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 kv = __half22float2(asHalf2(ka[e]));
      dot = fmaf(qf[2 * e], kv.x, dot);
      dot = fmaf(qf[2 * e + 1], kv.y, dot);
    }
    dot += __shfl_xor_sync(0xffffffffu, dot, 1);
    dot += __shfl_xor_sync(0xffffffffu, dot, 2);
    dot += __shfl_xor_sync(0xffffffffu, dot, 4);
    score[i] = t <= pos ? dot * scale : -FLT_MAX;
    if (t <= pos) m = fmaxf(m, score[i]);
  }
  float l = 0.f, o[8];
#pragma unroll
  for (int d = 0; d < 8; ++d) o[d] = 0.f;
#pragma unroll
  for (int i = 0; i < kKeysPerGroup; ++i) {
    const int t = t0 + g + kGroups * i;
    if (t > pos) continue;
    const float pr = exp2f(score[i] - m);
    l += pr;
    const uint32_t* va = reinterpret_cast<const uint32_t*>(&vr[i]);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 vv = __half22float2(asHalf2(va[e]));
      o[2 * e] = fmaf(pr, vv.x, o[2 * e]);
      o[2 * e + 1] = fmaf(pr, vv.y, o[2 * e + 1]);
    }
  }
  if (j == 0) sm[g] = m, sl[g] = l;  // a group without visible keys: m = -FLT_MAX, l = 0
#pragma unroll
  for (int d = 0; d < 8; ++d) so[g][j * 8 + d] = o[d];
  __syncthreads();
  if (threadIdx.x >= D) return;
  float mm = -FLT_MAX;
#pragma unroll
  for (int i = 0; i < kGroups; ++i) mm = fmaxf(mm, sm[i]);
  float acc = 0.f, ll = 0.f;
#pragma unroll
  for (int i = 0; i < kGroups; ++i) {
    const float wgt = sl[i] > 0.f ? exp2f(sm[i] - mm) : 0.f;
    acc = fmaf(wgt, so[i][threadIdx.x], acc);
    ll = fmaf(wgt, sl[i], ll);
  }
  const int splits = (p.capacity + kSplitKeys - 1) / kSplitKeys;
  const int64_t slot = static_cast<int64_t>(h) * splits + s;
  p.partO[slot * D + threadIdx.x] = acc;
  if (threadIdx.x == 0) p.partMl[2 * slot] = mm, p.partMl[2 * slot + 1] = ll;
}

template <typename Kernel>
WbStatus launch(Kernel kernel, dim3 grid, dim3 block, size_t smem, bool pdl, cudaStream_t stream, const char* what,
                const void* params) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  void* args[] = {const_cast<void*>(params)};
  const cudaError_t err = cudaLaunchKernelExC(&cfg, reinterpret_cast<const void*>(kernel), args);
  if (err != cudaSuccess) return fail(WB_STATUS_CUDA_ERROR, "%s: %s", what, cudaGetErrorString(err));
  return checkLaunch(what);
}

int smCount() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return 132;
  return sms;
}

template <int kIn, int kOut, bool kInt4, int kLanesPerRow>
WbStatus launchLinear(const WbDecodeLinearParams& p, cudaStream_t stream) {
  using L = RowLayout<kInt4, kLanesPerRow>;
  const int rowChunks = p.k / L::kInputsPerChunk;
  const int perLane = (rowChunks + L::kLanes - 1) / L::kLanes;
  // Enough blocks for every SM to hold two (the small GEMVs are latency-bound), else
  // eight warps; the argmax GEMV loops over its rows with a resident grid.
  const int sms = smCount();
  const int warpRows = (p.n + L::kRowsPerWarp - 1) / L::kRowsPerWarp;
  int warps = kOut == WB_DECODE_OUT_ARGMAX ? kMaxWarps : std::clamp((warpRows + 2 * sms - 1) / (2 * sms), 2, kMaxWarps);
  int blocks = (warpRows + warps - 1) / warps;
  if (kOut == WB_DECODE_OUT_ARGMAX) blocks = std::min(std::min(blocks, 4 * sms), p.argmaxSlots);
  constexpr bool kNorm = kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_EMBED;
  const size_t smem = static_cast<size_t>(p.k) * sizeof(float) + (kInt4 ? static_cast<size_t>(p.k) * 2 : 0) +
                      (kNorm ? static_cast<size_t>(p.k) * 4 : 0);
  auto kernel = perLane <= 4 ? decodeLinearKernel<kIn, kOut, kInt4, kLanesPerRow, 4>
                             : decodeLinearKernel<kIn, kOut, kInt4, kLanesPerRow, 16>;
  if (smem > 48 * 1024 &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) != cudaSuccess)
    return checkLaunch("decode linear: cudaFuncSetAttribute");
  return launch(kernel, dim3(blocks), dim3(warps * 32), smem, p.programmaticLaunch != 0, stream, "decode linear launch",
                &p);
}

// fp16 rows: a warp per row. int4 rows (4x shorter): eight lanes per row while that
// leaves each lane <= 4 chunks, else a warp, so that no lane dequantizes a long serial
// run of chunks (that, not memory, bounded the int4 GEMVs with few warps per SM).
template <int kIn, int kOut>
WbStatus launchFormat(const WbDecodeLinearParams& p, cudaStream_t stream) {
  if (!p.qweight) return launchLinear<kIn, kOut, false, 32>(p, stream);
  return p.k / 32 <= 32 ? launchLinear<kIn, kOut, true, 8>(p, stream) : launchLinear<kIn, kOut, true, 32>(p, stream);
}

WbStatus checkLinear(const WbDecodeLinearParams* params) {
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: params is NULL");
  const WbDecodeLinearParams& p = *params;
  if (p.n <= 0 || p.k <= 0 || p.k % 32 != 0)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: N = %d, K = %d (K must be a positive multiple of 32)", p.n,
                p.k);
  if ((p.weight == nullptr) == (p.qweight == nullptr))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: give exactly one of weight (fp16) and qweight (int4)");
  if (p.qweight && (!p.scales || (p.groupSize != 32 && p.groupSize != 64 && p.groupSize != 128) ||
                    p.k % p.groupSize != 0))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: int4 needs scales and a group size of 32, 64 or 128 dividing K");
  const void* w = p.weight ? p.weight : p.qweight;
  if (reinterpret_cast<uintptr_t>(w) % 16 || !p.y)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: weights must be 16-byte aligned and y given");
  switch (p.input) {
    case WB_DECODE_IN_PLAIN:
      if (!p.x || reinterpret_cast<uintptr_t>(p.x) % 16) return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: x (16-byte aligned) needed");
      break;
    case WB_DECODE_IN_LAYERNORM:
      if (!p.x || reinterpret_cast<uintptr_t>(p.x) % 16 || !p.lnWeight || !p.lnBias ||
          reinterpret_cast<uintptr_t>(p.lnWeight) % 16 || reinterpret_cast<uintptr_t>(p.lnBias) % 16)
        return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: LayerNorm needs x (16-byte aligned), weight and bias");
      break;
    case WB_DECODE_IN_EMBED:
      if (!p.wte || !p.wpe || !p.token || !p.position || !p.residual || !p.lnWeight || !p.lnBias ||
          reinterpret_cast<uintptr_t>(p.lnWeight) % 16 || reinterpret_cast<uintptr_t>(p.lnBias) % 16)
        return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: embedding needs wte, wpe, token, position, residual, LayerNorm");
      break;
    case WB_DECODE_IN_ATTENTION:
      if (!p.attnO || !p.attnMl || !p.position || p.headDim <= 0 || p.headDim % 8 || p.k % p.headDim ||
          p.attnSplits < 1)
        return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: attention input needs partials, position and headDim");
      break;
    default: return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: unknown input %d", static_cast<int>(p.input));
  }
  switch (p.output) {
    case WB_DECODE_OUT_QKV:
      if (p.n % 3 || !p.kCache || !p.vCache || !p.position || p.headDim <= 0 || (p.n / 3) % p.headDim ||
          p.capacity <= 0)
        return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: QKV needs N = 3E, caches, position and headDim");
      break;
    case WB_DECODE_OUT_ARGMAX:
      if (!p.argmaxValues || !p.argmaxIndices || !p.argmaxCounter || p.argmaxSlots < 1 || !p.nextToken || !p.tokens ||
          !p.position || p.capacity <= 0)
        return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: argmax needs its scratch, counter, token outputs and position");
      break;
    default: break;
  }
  return WB_STATUS_OK;
}

}  // namespace
}  // namespace wbk

extern "C" int wbDecodeAttentionSplitKeys(void) { return wbk::kSplitKeys; }
extern "C" int wbDecodeAttentionSplits(int capacity) { return (capacity + wbk::kSplitKeys - 1) / wbk::kSplitKeys; }

extern "C" WbStatus wbDecodeLinear(const WbDecodeLinearParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (WbStatus s = checkLinear(params); s != WB_STATUS_OK) return s;
  const WbDecodeLinearParams& p = *params;
  // The combinations a GPT-2 block uses (and PLAIN/STORE for tests).
  if (p.input == WB_DECODE_IN_EMBED && p.output == WB_DECODE_OUT_QKV)
    return launchFormat<WB_DECODE_IN_EMBED, WB_DECODE_OUT_QKV>(p, stream);
  if (p.input == WB_DECODE_IN_LAYERNORM && p.output == WB_DECODE_OUT_QKV)
    return launchFormat<WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_QKV>(p, stream);
  if (p.input == WB_DECODE_IN_ATTENTION && p.output == WB_DECODE_OUT_RESIDUAL)
    return launchFormat<WB_DECODE_IN_ATTENTION, WB_DECODE_OUT_RESIDUAL>(p, stream);
  if (p.input == WB_DECODE_IN_LAYERNORM && p.output == WB_DECODE_OUT_GELU)
    return launchFormat<WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_GELU>(p, stream);
  if (p.input == WB_DECODE_IN_PLAIN && p.output == WB_DECODE_OUT_RESIDUAL)
    return launchFormat<WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL>(p, stream);
  if (p.input == WB_DECODE_IN_LAYERNORM && p.output == WB_DECODE_OUT_ARGMAX)
    return launchFormat<WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_ARGMAX>(p, stream);
  if (p.input == WB_DECODE_IN_PLAIN && p.output == WB_DECODE_OUT_STORE)
    return launchFormat<WB_DECODE_IN_PLAIN, WB_DECODE_OUT_STORE>(p, stream);
  return fail(WB_STATUS_UNSUPPORTED, "decode linear: input %d with output %d is not built", static_cast<int>(p.input),
              static_cast<int>(p.output));
}

extern "C" WbStatus wbDecodeAttention(const WbDecodeAttentionParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention: params is NULL");
  const WbDecodeAttentionParams& p = *params;
  if (p.headDim != 64) return fail(WB_STATUS_UNSUPPORTED, "decode attention: head dim %d (64 only)", p.headDim);
  if (!p.q || !p.kCache || !p.vCache || !p.position || !p.partO || !p.partMl || p.heads < 1 || p.capacity < 1)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention: a pointer is NULL or a size is not positive");
  if (reinterpret_cast<uintptr_t>(p.q) % 16 || reinterpret_cast<uintptr_t>(p.kCache) % 16 ||
      reinterpret_cast<uintptr_t>(p.vCache) % 16)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention: q and the caches must be 16-byte aligned");
  const dim3 grid(wbDecodeAttentionSplits(p.capacity), p.heads);
  return launch(decodeAttentionKernel, grid, dim3(128), 0, p.programmaticLaunch != 0, stream,
                "decode attention launch", &p);
}
