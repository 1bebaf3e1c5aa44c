// Device helpers shared by the decode kernels (decode.cu: one kernel per phase;
// decode_persistent.cu: all phases in one cooperative kernel): programmatic-launch
// waits, half2 reinterpretation, int4 nibble unpacking, L2-only activation loads, block
// sums, tanh-GELU, input staging, GEMV chunk products and epilogues, the argmax
// reduction and the split attention. Internal to kernels/decode; no launches, no host code.
#pragma once

#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/decode/decode.h"

namespace wbk {
namespace {

constexpr int kSplitKeys = 64;  // keys per attention split (wbDecodeAttentionSplitKeys)
constexpr float kLog2e = 1.4426950408889634f;

// The staged input's dynamic shared memory, as stageInput fills it and gemvSharedBytes
// (decode.cu) counts it: x in fp32 [K], its int4-ordered copy [K/8] (int4 only), then the
// LayerNorm's weight and bias [K] each.
struct StagedInput {
  float* sx;
  uint4* sxq;
  __half* sln;
  __device__ __forceinline__ StagedInput(float4* smem, int k, bool int4)
      : sx(reinterpret_cast<float*>(smem)),
        sxq(reinterpret_cast<uint4*>(sx + k)),
        sln(reinterpret_cast<__half*>(sxq + (int4 ? k / 8 : 0))) {}
};

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

// The eight fp16 values of a 16-byte chunk, as floats.
__device__ __forceinline__ void unpack8(const uint4& raw, float f[8]) {
  const uint32_t* r = reinterpret_cast<const uint32_t*>(&raw);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float2 v = __half22float2(asHalf2(r[e]));
    f[2 * e] = v.x;
    f[2 * e + 1] = v.y;
  }
}

// Eight fp16 values from a 16-byte activation chunk (L2 only: written by another kernel).
__device__ __forceinline__ void load8(const __half* src, float f[8]) {
  unpack8(__ldcg(reinterpret_cast<const uint4*>(src)), f);
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


// The combine of one head's split-attention partials for inputs kc*8 .. kc*8+7 (fp16-
// rounded, as the eager path rounds the attention output). The partials are
// independent loads: they are issued kCombineBatch splits at a time, so a batch costs
// one L2 round trip (serial loads cost one per split, on the c_proj kernel's critical path).
// Batches after the first rescale the running sums to the new maximum; with one batch
// the sums are those of a single pass over the splits.
constexpr int kCombineBatch = 4;
__device__ __forceinline__ void combineSplits(const WbDecodeLinearParams& p, int64_t pos, int kc, float f[8]) {
  const int d0 = kc * 8 % p.headDim, h = kc * 8 / p.headDim;
  const int splits = min(static_cast<int>(pos / kSplitKeys) + 1, p.attnSplits);
  const float2* ml = reinterpret_cast<const float2*>(p.attnMl) + static_cast<int64_t>(h) * p.attnSplits;
  const float* o = p.attnO + static_cast<int64_t>(h) * p.attnSplits * p.headDim + d0;
  float m = -FLT_MAX, l = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) f[i] = 0.f;
  for (int s0 = 0; s0 < splits; s0 += kCombineBatch) {
    float2 mls[kCombineBatch];
    float4 o0[kCombineBatch], o1[kCombineBatch];
#pragma unroll
    for (int j = 0; j < kCombineBatch; ++j) {
      const int s = s0 + j;
      mls[j] = make_float2(-FLT_MAX, 0.f);
      o0[j] = o1[j] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (s < splits) {
        mls[j] = __ldcg(ml + s);
        const float4* os = reinterpret_cast<const float4*>(o + static_cast<int64_t>(s) * p.headDim);
        o0[j] = __ldcg(os);
        o1[j] = __ldcg(os + 1);
      }
    }
    float mb = m;
#pragma unroll
    for (int j = 0; j < kCombineBatch; ++j) mb = fmaxf(mb, mls[j].x);
    const float c = exp2f(m - mb);  // 0 before the first batch (m = -FLT_MAX)
    l *= c;
#pragma unroll
    for (int i = 0; i < 8; ++i) f[i] *= c;
#pragma unroll
    for (int j = 0; j < kCombineBatch; ++j) {
      if (s0 + j >= splits) continue;
      const float w = exp2f(mls[j].x - mb);
      l += w * mls[j].y;
      f[0] += w * o0[j].x, f[1] += w * o0[j].y, f[2] += w * o0[j].z, f[3] += w * o0[j].w;
      f[4] += w * o1[j].x, f[5] += w * o1[j].y, f[6] += w * o1[j].z, f[7] += w * o1[j].w;
    }
    m = mb;
  }
  const float inv = 1.f / l;
#pragma unroll
  for (int i = 0; i < 8; ++i) f[i] = roundHalf(f[i] * inv);
}

// An 8-input chunk as the fp16 pairs (x0,x4),(x1,x5),(x2,x6),(x3,x7): the order the
// int4 nibble trick produces (stageInput's int4 layout).
__device__ __forceinline__ uint4 packInt4Order(const float* f) {
  uint4 out;
  out.x = asU32(__floats2half2_rn(f[0], f[4]));
  out.y = asU32(__floats2half2_rn(f[1], f[5]));
  out.z = asU32(__floats2half2_rn(f[2], f[6]));
  out.w = asU32(__floats2half2_rn(f[3], f[7]));
  return out;
}

// The residual after an attention block (wbDecodeAttentionBlock), element i:
// x + fp16(sum of the heads' attn.c_proj partials + bias), both sums rounded to fp16 as
// the eager path rounds c_proj's output and the residual add. The heads are added in
// order, so the HEADS staging and the RESIDUAL epilogue get the same bits.
__device__ __forceinline__ float attentionResidual(const WbDecodeLinearParams& p, int len, int i, float x) {
  float s = 0.f;
  for (int h = 0; h < p.headCount; ++h) s += __ldcg(p.headPartials + static_cast<int64_t>(h) * len + i);
  return roundHalf(x + roundHalf(s + __half2float(static_cast<const __half*>(p.headBias)[i])));
}

// The residual element a RESIDUAL epilogue adds to (0 otherwise), read before the wait:
// it was last written two or more kernels back, as were an attention block's head
// partials, and both have finished by the time a kernel may start (see waitForPrevious).
template <int kOut>
__device__ __forceinline__ float residualBeforeWait(const WbDecodeLinearParams& p, int row) {
  if (kOut != WB_DECODE_OUT_RESIDUAL) return 0.f;
  const float r = __half2float(__ldcg(static_cast<const __half*>(p.y) + row));
  return p.headPartials ? attentionResidual(p, p.n, row, r) : r;
}

// The LayerNorm weight and bias (fp16 [K] each, constant) into sln[0..K) and sln[K..2K).
__device__ __forceinline__ void stageLayerNormParams(const WbDecodeLinearParams& p, __half* sln) {
  for (int c = threadIdx.x; c < p.k / 8; c += blockDim.x) {
    reinterpret_cast<uint4*>(sln)[c] = __ldg(reinterpret_cast<const uint4*>(p.lnWeight) + c);
    reinterpret_cast<uint4*>(sln + p.k)[c] = __ldg(reinterpret_cast<const uint4*>(p.lnBias) + c);
  }
}

// s[0..8) += one chunk's 8 partial sums (two float4 loads).
__device__ __forceinline__ void addChunk(float (&s)[8], const float4& lo, const float4& hi) {
  s[0] += lo.x, s[1] += lo.y, s[2] += lo.z, s[3] += lo.w;
  s[4] += hi.x, s[5] += hi.y, s[6] += hi.z, s[7] += hi.w;
}

// fp16(x + fp16(s + b)) for a chunk's 8 inputs, packed: the eager path's rounding of the
// projection's output and of the residual add.
__device__ __forceinline__ uint4 packResidual(const float (&x)[8], const float (&s)[8], const float (&b)[8]) {
  uint4 out;
  uint32_t* o = reinterpret_cast<uint32_t*>(&out);
#pragma unroll
  for (int e = 0; e < 4; ++e)
    o[e] = asU32(__floats2half2_rn(roundHalf(x[2 * e] + roundHalf(s[2 * e] + b[2 * e])),
                                   roundHalf(x[2 * e + 1] + roundHalf(s[2 * e + 1] + b[2 * e + 1]))));
  return out;
}

// attentionResidual for the 8 inputs of chunk kc, as packed fp16 (exact: each value is
// rounded to fp16). The heads' loads are issued kHeadBatch at a time.
__device__ __forceinline__ uint4 attentionResidualChunk(const WbDecodeLinearParams& p, int kc) {
  constexpr int kHeadBatch = 2;
  float f[8], b[8], s[8];
  load8(static_cast<const __half*>(p.x) + kc * 8, f);
  load8(static_cast<const __half*>(p.headBias) + kc * 8, b);
#pragma unroll
  for (int i = 0; i < 8; ++i) s[i] = 0.f;
  for (int h0 = 0; h0 < p.headCount; h0 += kHeadBatch) {
    float4 lo[kHeadBatch], hi[kHeadBatch];
#pragma unroll
    for (int j = 0; j < kHeadBatch; ++j) {
      lo[j] = hi[j] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (h0 + j < p.headCount) {
        const float4* src = reinterpret_cast<const float4*>(p.headPartials + static_cast<int64_t>(h0 + j) * p.k + kc * 8);
        lo[j] = __ldcg(src);
        hi[j] = __ldcg(src + 1);
      }
    }
#pragma unroll
    for (int j = 0; j < kHeadBatch; ++j)
      if (h0 + j < p.headCount) addChunk(s, lo[j], hi[j]);
  }
  return packResidual(f, s, b);
}

// attentionResidualChunk for kSums sums (headCount == kSums), the same bits: x, the sums
// and the bias loaded at once.
template <int kSums>
__device__ __forceinline__ uint4 residualChunkSums(const WbDecodeLinearParams& p, int kc) {
  const uint4 xr = __ldcg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.x) + kc * 8));
  float4 lo[kSums], hi[kSums];
#pragma unroll
  for (int h = 0; h < kSums; ++h) {
    const float4* src = reinterpret_cast<const float4*>(p.headPartials + static_cast<int64_t>(h) * p.k + kc * 8);
    lo[h] = __ldcg(src);
    hi[h] = __ldcg(src + 1);
  }
  const uint4 br = __ldg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.headBias) + kc * 8));
  float x[8], b[8], s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int h = 0; h < kSums; ++h) addChunk(s, lo[h], hi[h]);
  unpack8(xr, x);
  unpack8(br, b);
  return packResidual(x, s, b);
}

// HEADS with p.residual set: block 0 stores the residual it built (chunk kc), so that a
// consumer of this kernel reads it instead of rebuilding it (wbDecodeMlpBlock, and the
// attention block after one).
__device__ __forceinline__ void storeHeadsResidual(const WbDecodeLinearParams& p, int kc, const uint4& r) {
  if (p.residual && blockIdx.x == 0) reinterpret_cast<uint4*>(p.residual)[kc] = r;
}

// LAYERNORM in one pass: every thread keeps its chunks of x (up to kLnChunks, packed)
// in registers and sums them and their squares; the block adds the per-warp sums after
// one barrier, and each thread then normalises its own chunks. Two barriers where the
// two passes over shared memory take six. The variance is E[x^2] - mean^2 in fp32
// over the fp16 residual: cancellation only matters where |mean| >> std, far from a
// residual stream (and the result is rounded to fp16). `scratch`: two floats per warp.
constexpr int kLnChunks = 4;
template <int kIn, bool kInt4, int kSums = 0>
__device__ void stageLayerNormOnePass(const WbDecodeLinearParams& p, float* sx, uint4* sxq, const __half* sln,
                                      float* scratch) {
  const int k = p.k, chunks8 = k / 8, threads = static_cast<int>(blockDim.x);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // The chunks stay packed (4 registers each, converted again where used): unpacked
  // fp32 copies cost the LM head a quarter of its resident blocks.
  // HEADS: x + the attention's sum goes through shared memory first (fp16, in sx, which
  // is only written again after the barrier below): computed in place of the loads
  // below, its head loads would hold registers for every chunk at once. Not so for a
  // few sums known at compile time (kSums: an MLP block's copies) or one (an accumulating
  // attention block): a chunk's loads are issued together in place of x's, one L2 round
  // trip and no barrier.
  const __half* src = static_cast<const __half*>(p.x);
  const bool sumsWithX = kIn == WB_DECODE_IN_HEADS && (kSums > 0 || p.headCount == 1);
  if (kIn == WB_DECODE_IN_HEADS && !sumsWithX) {
    for (int kc = threadIdx.x; kc < chunks8; kc += threads) {
      const uint4 r = attentionResidualChunk(p, kc);
      reinterpret_cast<uint4*>(sx)[kc] = r;
      storeHeadsResidual(p, kc, r);
    }
    __syncthreads();
    src = reinterpret_cast<const __half*>(sx);
  }
  uint4 raw[kLnChunks];
#pragma unroll
  for (int u = 0; u < kLnChunks; ++u) {
    const int kc = static_cast<int>(threadIdx.x) + u * threads;
    raw[u] = make_uint4(0, 0, 0, 0);
    if (kc >= chunks8) continue;
    if (sumsWithX) {
      raw[u] = residualChunkSums<(kSums > 0 ? kSums : 1)>(p, kc);
      storeHeadsResidual(p, kc, raw[u]);
    } else {
      raw[u] = kIn == WB_DECODE_IN_HEADS ? reinterpret_cast<const uint4*>(src)[kc]
                                         : __ldcg(reinterpret_cast<const uint4*>(src + kc * 8));
    }
  }
  float sum = 0.f, squares = 0.f;  // zero-filled chunks past the end add nothing
#pragma unroll
  for (int u = 0; u < kLnChunks; ++u) {
    const uint32_t* r = reinterpret_cast<const uint32_t*>(&raw[u]);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 f = __half22float2(asHalf2(r[e]));
      sum += f.x + f.y;
      squares = fmaf(f.x, f.x, fmaf(f.y, f.y, squares));
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    sum += __shfl_xor_sync(0xffffffffu, sum, o);
    squares += __shfl_xor_sync(0xffffffffu, squares, o);
  }
  if (lane == 0) scratch[2 * warp] = sum, scratch[2 * warp + 1] = squares;
  __syncthreads();
  sum = squares = 0.f;
  for (int w = 0; w < threads / 32; ++w) sum += scratch[2 * w], squares += scratch[2 * w + 1];
  const float mean = sum / static_cast<float>(k);
  const float rstd = rsqrtf(fmaxf(squares / static_cast<float>(k) - mean * mean, 0.f) + p.lnEps);
  const int chunks32 = k / 32;
#pragma unroll
  for (int u = 0; u < kLnChunks; ++u) {
    const int kc = static_cast<int>(threadIdx.x) + u * threads;
    if (kc >= chunks8) continue;
    const uint4 gw = reinterpret_cast<const uint4*>(sln)[kc], bw = reinterpret_cast<const uint4*>(sln + k)[kc];
    const uint32_t* r = reinterpret_cast<const uint32_t*>(&raw[u]);
    const uint32_t* g = reinterpret_cast<const uint32_t*>(&gw);
    const uint32_t* b = reinterpret_cast<const uint32_t*>(&bw);
    float f[8];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x = __half22float2(asHalf2(r[e])), gg = __half22float2(asHalf2(g[e])),
                   bb = __half22float2(asHalf2(b[e]));
      f[2 * e] = roundHalf((x.x - mean) * rstd * gg.x + bb.x);
      f[2 * e + 1] = roundHalf((x.y - mean) * rstd * gg.y + bb.y);
    }
    if (kInt4) {
      sxq[(kc & 3) * chunks32 + (kc >> 2)] = packInt4Order(f);
    } else {
      reinterpret_cast<float4*>(sx + kc * 8)[0] = make_float4(f[0], f[1], f[2], f[3]);
      reinterpret_cast<float4*>(sx + kc * 8)[1] = make_float4(f[4], f[5], f[6], f[7]);
    }
  }
  __syncthreads();
}

// LAYERNORM folded into the GEMV (p.lnFolded, fp16 weights): sx = x * lnWeight in fp32,
// and per warp the sums of x and x^2 in scratch (two floats a warp), behind one barrier;
// foldedStats then gives the mean and rstd while the products run. Reading sx needs no
// statistics, so the only barrier before the products is the staging's own.
// EMBED: x = wte[token] + wpe[position] (fp16), which block 0 also stores to the residual.
template <int kIn>
__device__ void stageLayerNormFolded(const WbDecodeLinearParams& p, float* sx, const __half* sln, float* scratch) {
  const int chunks8 = p.k / 8;
  float sum = 0.f, squares = 0.f;
  const __half* embedRow = nullptr;
  const __half* positionRow = nullptr;
  if constexpr (kIn == WB_DECODE_IN_EMBED) {
    embedRow = static_cast<const __half*>(p.wte) + __ldcg(p.token) * p.k;
    positionRow = static_cast<const __half*>(p.wpe) + __ldcg(p.position) * p.k;
  }
  for (int kc = threadIdx.x; kc < chunks8; kc += blockDim.x) {
    uint4 raw;
    if constexpr (kIn == WB_DECODE_IN_EMBED) {
      const uint4 a = __ldcg(reinterpret_cast<const uint4*>(embedRow + kc * 8));
      const uint4 b = __ldcg(reinterpret_cast<const uint4*>(positionRow + kc * 8));
      const uint32_t* aa = reinterpret_cast<const uint32_t*>(&a);
      const uint32_t* bb = reinterpret_cast<const uint32_t*>(&b);
      uint32_t* rr = reinterpret_cast<uint32_t*>(&raw);
#pragma unroll
      for (int e = 0; e < 4; ++e) {  // rounded to fp16 as the eager embedding sum
        const float2 x = __half22float2(asHalf2(aa[e])), y = __half22float2(asHalf2(bb[e]));
        rr[e] = asU32(__floats2half2_rn(x.x + y.x, x.y + y.y));
      }
      if (blockIdx.x == 0) *reinterpret_cast<uint4*>(static_cast<__half*>(p.residual) + kc * 8) = raw;
    } else {
      raw = __ldcg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.x) + kc * 8));
    }
    const uint4 gw = reinterpret_cast<const uint4*>(sln)[kc];
    const uint32_t* r = reinterpret_cast<const uint32_t*>(&raw);
    const uint32_t* g = reinterpret_cast<const uint32_t*>(&gw);
    float f[8];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x = __half22float2(asHalf2(r[e])), gg = __half22float2(asHalf2(g[e]));
      sum += x.x + x.y;
      squares = fmaf(x.x, x.x, fmaf(x.y, x.y, squares));
      f[2 * e] = x.x * gg.x;
      f[2 * e + 1] = x.y * gg.y;
    }
    reinterpret_cast<float4*>(sx + kc * 8)[0] = make_float4(f[0], f[1], f[2], f[3]);
    reinterpret_cast<float4*>(sx + kc * 8)[1] = make_float4(f[4], f[5], f[6], f[7]);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    sum += __shfl_xor_sync(0xffffffffu, sum, o);
    squares += __shfl_xor_sync(0xffffffffu, squares, o);
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) scratch[2 * warp] = sum, scratch[2 * warp + 1] = squares;
  __syncthreads();
}

// The mean and rstd of x from stageLayerNormFolded's per-warp sums (E[x^2] - mean^2 in
// fp32, as stageLayerNormOnePass).
__device__ __forceinline__ void foldedStats(const WbDecodeLinearParams& p, const float* scratch, float& mean,
                                            float& rstd) {
  float sum = 0.f, squares = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) sum += scratch[2 * w], squares += scratch[2 * w + 1];
  mean = sum / static_cast<float>(p.k);
  rstd = rsqrtf(fmaxf(squares / static_cast<float>(p.k) - mean * mean, 0.f) + p.lnEps);
}

// The sums a GEMV's HEADS staging knows at compile time: ln_f + the LM head (ARGMAX)
// follows only an MLP block, and reads its copies (checkLinear holds it to that).
template <int kIn, int kOut>
constexpr int kHeadsSums = kIn == WB_DECODE_IN_HEADS && kOut == WB_DECODE_OUT_ARGMAX ? WB_DECODE_MLP_SUMS : 0;

// Builds the block's input vector in shared memory: fp32 [K] for fp16 weights, or for
// int4 the fp16 pairs (x0,x4),(x1,x5),.. of each 8-input chunk kc = 4c + e at slot
// e * K/32 + c, the order the nibble trick produces (as kernels/int4_matmul).
// `attnPos` >= 0: the step's position, read by the caller before its wait (ATTENTION).
// kOnePass: LAYERNORM may take stageLayerNormOnePass (unless p.lnTwoPass).
// kSums > 0: HEADS with headCount == kSums known at compile time: the one-pass staging
// that loads the sums with x only (the caller checks p.lnTwoPass off and K <= kLnChunks
// chunks a thread).
template <int kIn, bool kInt4, bool kOnePass = true, int kSums = 0>
__device__ void stageInput(const WbDecodeLinearParams& p, float* sx, uint4* sxq, const __half* sln, float* scratch,
                           int64_t attnPos = -1) {
  if constexpr ((kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_HEADS) && kOnePass) {
    if (kSums > 0 || (!p.lnTwoPass && p.k / 8 <= kLnChunks * static_cast<int>(blockDim.x))) {
      stageLayerNormOnePass<kIn, kInt4, kSums>(p, sx, sxq, sln, scratch);
      return;
    }
  }
  const int k = p.k, chunks8 = k / 8;
  const int64_t pos = kIn == WB_DECODE_IN_ATTENTION && attnPos >= 0 ? attnPos
                      : (kIn == WB_DECODE_IN_EMBED || kIn == WB_DECODE_IN_ATTENTION) ? __ldcg(p.position)
                                                                                      : 0;
  if constexpr (kIn == WB_DECODE_IN_PLAIN || kIn == WB_DECODE_IN_LAYERNORM) {
    // Up to kStageLoads chunks per thread (K = 3072 on 96 threads takes four): their
    // loads are issued together, one L2 round trip rather than one per chunk.
    constexpr int kStageLoads = 4;
    for (int kc0 = threadIdx.x; kc0 < chunks8; kc0 += kStageLoads * blockDim.x) {
      uint4 raw[kStageLoads];
#pragma unroll
      for (int u = 0; u < kStageLoads; ++u) {
        const int kc = kc0 + u * static_cast<int>(blockDim.x);
        if (kc < chunks8) raw[u] = __ldcg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.x) + kc * 8));
      }
#pragma unroll
      for (int u = 0; u < kStageLoads; ++u) {
        const int kc = kc0 + u * static_cast<int>(blockDim.x);
        if (kc >= chunks8) continue;
        const uint32_t* r = reinterpret_cast<const uint32_t*>(&raw[u]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 v = __half22float2(asHalf2(r[e]));
          sx[kc * 8 + 2 * e] = v.x;
          sx[kc * 8 + 2 * e + 1] = v.y;
        }
      }
    }
  } else {
    for (int kc = threadIdx.x; kc < chunks8; kc += blockDim.x) {
      float f[8];
      if constexpr (kIn == WB_DECODE_IN_EMBED) {
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
      } else if constexpr (kIn == WB_DECODE_IN_HEADS) {
        const uint4 r = attentionResidualChunk(p, kc);
        storeHeadsResidual(p, kc, r);
        unpack8(r, f);
      } else {
        combineSplits(p, pos, kc, f);
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) sx[kc * 8 + i] = f[i];
    }
  }
  if (kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_EMBED || kIn == WB_DECODE_IN_HEADS) {
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
      sxq[(kc & 3) * chunks32 + (kc >> 2)] = packInt4Order(sx + kc * 8);
    }
  }
  __syncthreads();
}

// Products of one 16-byte fp16 weight chunk (8 inputs) with its 8 fp32 inputs, added to acc.
__device__ __forceinline__ float dotFp16Chunk(const uint4& w, const float* x, float acc) {
  const uint32_t* wa = reinterpret_cast<const uint32_t*>(&w);
  const float4* xs = reinterpret_cast<const float4*>(x);
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
  return acc;
}

// The unscaled dot of one 16-byte int4 chunk c (32 inputs of a packed row) with the
// staged inputs (stageInput's int4 layout); zz = 1024 + zero point in both halves.
// Sums 8 products per half2 lane in fp16, as kernels/int4_matmul does.
__device__ __forceinline__ float dotInt4Chunk(const uint4& w, __half2 zz, const uint4* sxq, int chunks32, int c) {
  const uint32_t* wa = reinterpret_cast<const uint32_t*>(&w);
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
  return part;
}

// The epilogue of output row `row` of p: value = x.W[row] + bias[row] in fp32. `res` is
// the residual element when haveRes (the caller fetched it early; else read here); `pos`
// the step's position (QKV). ARGMAX keeps the first maximum in best / bestIdx.
template <int kOut>
__device__ __forceinline__ void storeRow(const WbDecodeLinearParams& p, int row, float value, bool haveRes, float res,
                                         int64_t pos, float& best, int& bestIdx) {
  const __half out = __float2half_rn(value);
  __half* y = static_cast<__half*>(p.y);
  if (kOut == WB_DECODE_OUT_STORE) {
    y[row] = out;
  } else if (kOut == WB_DECODE_OUT_GELU) {
    y[row] = __float2half_rn(geluTanh(__half2float(out)));
  } else if (kOut == WB_DECODE_OUT_RESIDUAL) {
    const float r = haveRes           ? res
                    : p.headPartials ? attentionResidual(p, p.n, row, __half2float(__ldcg(y + row)))
                                     : __half2float(__ldcg(y + row));
    if (p.headClear) p.headPartials[row] = 0.f;
    y[row] = __float2half_rn(r + __half2float(out));
  } else if (kOut == WB_DECODE_OUT_QKV) {
    const int e = p.n / 3;
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

__device__ __forceinline__ bool betterArgmax(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

__device__ __forceinline__ void warpArgmax(float& best, int& bestIdx) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bestIdx, o);
    if (betterArgmax(ov, oi, best, bestIdx)) best = ov, bestIdx = oi;
  }
}

// A candidate as one 64-bit key whose unsigned maximum is the first maximum: the
// logit's bits made monotone (-0 taken as +0, as the float comparison does) above the
// complement of its row. Zero is below every key.
__device__ __forceinline__ unsigned long long argmaxKey(float v, int row) {
  const uint32_t u = __float_as_uint(v + 0.f);
  const uint32_t m = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (static_cast<unsigned long long>(m) << 32) | (0xffffffffu - static_cast<uint32_t>(row));
}

// The token's hand-over, by the last block's thread 0: nextToken, tokens[position + 1],
// the position advanced and the counter re-armed.
__device__ __forceinline__ void argmaxPublish(const WbDecodeLinearParams& p, int token) {
  const int64_t pos = __ldcg(p.position) + 1;
  p.nextToken[0] = token;
  if (pos < p.capacity) p.tokens[pos] = token;
  *const_cast<int64_t*>(p.position) = pos;
  *p.argmaxCounter = 0u;
}

// After every thread's candidates: the block's first maximum goes to the argmax
// scratch (or, with p.argmaxBest, raises that one key); the last block to post reduces
// all of them (reads the key back), writes the token (nextToken, tokens[position + 1]),
// advances the position and re-arms the counter. Shared arrays of one entry per warp;
// called by every thread of every block.
__device__ void argmaxFinish(const WbDecodeLinearParams& p, float best, int bestIdx, float* bestValue, int* bestIndex,
                             bool* lastBlock) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  warpArgmax(best, bestIdx);
  if (lane == 0) bestValue[warp] = best, bestIndex[warp] = bestIdx;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < warps; ++i)
      if (betterArgmax(bestValue[i], bestIndex[i], best, bestIdx)) best = bestValue[i], bestIdx = bestIndex[i];
    if (p.argmaxBest) {
      atomicMax(p.argmaxBest, argmaxKey(best, bestIdx));
    } else {
      p.argmaxValues[blockIdx.x] = best;
      p.argmaxIndices[blockIdx.x] = bestIdx;
    }
    __threadfence();
    const bool last = atomicAdd(p.argmaxCounter, 1u) == gridDim.x - 1;
    if (last && p.argmaxBest) {  // every block's key is in: no block-wide reduction
      __threadfence();
      const unsigned long long key = atomicExch(p.argmaxBest, 0ull);
      argmaxPublish(p, static_cast<int>(0xffffffffu - static_cast<uint32_t>(key)));
    }
    *lastBlock = last && !p.argmaxBest;
  }
  __syncthreads();
  if (!*lastBlock) return;
  __threadfence();
  best = -FLT_MAX;
  bestIdx = 0x7fffffff;
  for (int i = threadIdx.x; i < static_cast<int>(gridDim.x); i += blockDim.x) {
    const float v = __ldcg(p.argmaxValues + i);
    const int idx = __ldcg(p.argmaxIndices + i);
    if (betterArgmax(v, idx, best, bestIdx)) best = v, bestIdx = idx;
  }
  warpArgmax(best, bestIdx);
  __syncthreads();
  if (lane == 0) bestValue[warp] = best, bestIndex[warp] = bestIdx;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < warps; ++i)
      if (betterArgmax(bestValue[i], bestIndex[i], best, bestIdx)) best = bestValue[i], bestIdx = bestIndex[i];
    argmaxPublish(p, bestIdx);
  }
}

// Single-query attention over one 64-key split of one head, by 128 threads (`tid`):
// eight threads per key, each owning eight of the 64 dims of q, k and v; a group of
// eight threads walks four keys with an online softmax, then the 16 groups combine in
// shared memory into one unnormalised partial (partO, partMl).
constexpr int kAttnGroups = 16, kAttnKeysPerGroup = kSplitKeys / kAttnGroups;
struct SplitKeys {
  uint4 k[kAttnKeysPerGroup], v[kAttnKeysPerGroup];
};
struct SplitShared {
  float m[kAttnGroups], l[kAttnGroups];
  float o[kAttnGroups][64];
};

// The split's keys before this step's were written by earlier steps: callers fetch
// them before waiting for this step's q and k/v.
__device__ __forceinline__ void fetchSplit(const WbDecodeAttentionParams& p, int h, int s, int64_t pos, int tid,
                                           SplitKeys& r) {
  constexpr int D = 64;
  const int g = tid >> 3, j = tid & 7, t0 = s * kSplitKeys;
  const int64_t base = static_cast<int64_t>(h) * p.capacity * D + j * 8;
#pragma unroll
  for (int i = 0; i < kAttnKeysPerGroup; ++i) {
    const int t = t0 + g + kAttnGroups * i;
    r.k[i] = r.v[i] = make_uint4(0, 0, 0, 0);
    if (t < pos && t < p.capacity) {
      r.k[i] = __ldcg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.kCache) + base + int64_t{t} * D));
      r.v[i] = __ldcg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.vCache) + base + int64_t{t} * D));
    }
  }
}

// `sync` orders the 128 threads' shared-memory writes before the combine (a block or
// a named barrier). Splits past the position write nothing (the consumer reads splits
// 0 .. pos / 64 only); every one of the 128 threads must call it.
template <typename Sync>
__device__ __forceinline__ void attendSplit(const WbDecodeAttentionParams& p, int h, int s, int64_t pos, int tid,
                                            SplitKeys& r, SplitShared& sh, Sync sync) {
  constexpr int D = 64;
  const int g = tid >> 3, j = tid & 7, t0 = s * kSplitKeys;
  if (t0 > pos || pos >= p.capacity) return;
  const int64_t base = static_cast<int64_t>(h) * p.capacity * D + j * 8;
  float qf[8];
  load8(static_cast<const __half*>(p.q) + h * D + j * 8, qf);
  const float scale = p.scale * kLog2e;
  float score[kAttnKeysPerGroup];
  float m = -FLT_MAX;
#pragma unroll
  for (int i = 0; i < kAttnKeysPerGroup; ++i) {
    const int t = t0 + g + kAttnGroups * i;
    if (t == pos) {
      r.k[i] = __ldcg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.kCache) + base + int64_t{t} * D));
      r.v[i] = __ldcg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.vCache) + base + int64_t{t} * D));
    }
    const uint32_t* ka = reinterpret_cast<const uint32_t*>(&r.k[i]);
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
  for (int i = 0; i < kAttnKeysPerGroup; ++i) {
    const int t = t0 + g + kAttnGroups * i;
    if (t > pos) continue;
    const float pr = exp2f(score[i] - m);
    l += pr;
    const uint32_t* va = reinterpret_cast<const uint32_t*>(&r.v[i]);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 vv = __half22float2(asHalf2(va[e]));
      o[2 * e] = fmaf(pr, vv.x, o[2 * e]);
      o[2 * e + 1] = fmaf(pr, vv.y, o[2 * e + 1]);
    }
  }
  if (j == 0) sh.m[g] = m, sh.l[g] = l;  // a group without visible keys: m = -FLT_MAX, l = 0
#pragma unroll
  for (int d = 0; d < 8; ++d) sh.o[g][j * 8 + d] = o[d];
  sync();
  if (tid < D) {
    float mm = -FLT_MAX;
#pragma unroll
    for (int i = 0; i < kAttnGroups; ++i) mm = fmaxf(mm, sh.m[i]);
    float acc = 0.f, ll = 0.f;
#pragma unroll
    for (int i = 0; i < kAttnGroups; ++i) {
      const float wgt = sh.l[i] > 0.f ? exp2f(sh.m[i] - mm) : 0.f;
      acc = fmaf(wgt, sh.o[i][tid], acc);
      ll = fmaf(wgt, sh.l[i], ll);
    }
    const int splits = (p.capacity + kSplitKeys - 1) / kSplitKeys;
    const int64_t slot = static_cast<int64_t>(h) * splits + s;
    p.partO[slot * D + tid] = acc;
    if (tid == 0) p.partMl[2 * slot] = mm, p.partMl[2 * slot + 1] = ll;
  }
  sync();  // the shared partials may be rewritten by the next split
}

}  // namespace
}  // namespace wbk
