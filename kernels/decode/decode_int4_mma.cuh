// The int4 GEMV of decode.cu with its products on tensor cores (WbDecodeLinearParams::int4Mma):
// groups of 128 inputs, K a multiple of 1024, any input and output (the LM head's argmax
// too). Included by decode.cu only.
//
// Why: the half2 path spends ~2.4 instructions a code (unpack, zero point, multiply,
// convert, add) and its products, not the weight stream, set an int4 kernel's time
// (docs/PERF.md, "Where an int4 decode kernel's time goes"). Here each lane unpacks every
// 32-bit word of codes in place into the A fragment of one mma.m16n8k16 for the low
// nibbles and one for the high ones, and takes the matching B fragment straight from the
// staged input, whose int4 order (stageInput) already pairs (x0, x4), (x1, x5), ... as the
// nibble trick produces them: ~9 instructions and 2 mma a word for two rows. How rows and
// K map onto the fragments (a row's whole K stays in one warp, so no shared-memory sum):
// see MmaRows. Measured in docs/PERF.md, "int4 products on tensor cores".
#pragma once

#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/decode/decode_device.cuh"

namespace wbk {
namespace {

constexpr int kMmaMaxWarps = 12;    // warps of a tensor-core GEMV block
constexpr int kMmaStepInputs = 128; // inputs of one piece: four lanes x 32 codes, one group

// D = A.B + C for one m16n8k16 (fp16 in, fp32 accumulate); a[0..3], b[0..1] as the PTX
// fragment layout orders them. Not volatile: the compiler may interleave independent ones.
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// (w & 0x00F000F0) | 0x64006400: two fp16 values 1024 + 16 * nibble (nibbles 1 and 5).
__device__ __forceinline__ uint32_t lop3HighNibbles(uint32_t w) {
  uint32_t out;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(out) : "r"(w), "r"(0x00F000F0u), "r"(0x64006400u));
  return out;
}

// One 32-bit word (8 codes) of each of a tile's two rows (A rows g and g + 8) as the A
// fragments of the low-nibble and high-nibble products, each code minus its zero point,
// exactly (small integers in fp16).
// zz = 1024 + zero, zz16 = -(64 + zero): (1024 + 16 n) / 16 - 64 - zero = n - zero.
template <bool kTwoRows>
__device__ __forceinline__ void unpackWord(uint32_t qa, uint32_t qb, __half2 zza, __half2 zzb, __half2 zz16a,
                                           __half2 zz16b, uint32_t (&lo)[4], uint32_t (&hi)[4]) {
  const __half2 sixteenth = __float2half2_rn(0.0625f);
  const uint32_t qa8 = qa >> 8;
  lo[0] = asU32(__hsub2(asHalf2(lop3Nibbles(qa)), zza));   // (n0, n4): inputs (x0, x4)
  lo[2] = asU32(__hsub2(asHalf2(lop3Nibbles(qa8)), zza));  // (n2, n6)
  hi[0] = asU32(__hfma2(asHalf2(lop3HighNibbles(qa)), sixteenth, zz16a));   // (n1, n5)
  hi[2] = asU32(__hfma2(asHalf2(lop3HighNibbles(qa8)), sixteenth, zz16a));  // (n3, n7)
  if (kTwoRows) {
    const uint32_t qb8 = qb >> 8;
    lo[1] = asU32(__hsub2(asHalf2(lop3Nibbles(qb)), zzb));
    lo[3] = asU32(__hsub2(asHalf2(lop3Nibbles(qb8)), zzb));
    hi[1] = asU32(__hfma2(asHalf2(lop3HighNibbles(qb)), sixteenth, zz16b));
    hi[3] = asU32(__hfma2(asHalf2(lop3HighNibbles(qb8)), sixteenth, zz16b));
  } else {
    lo[1] = lo[3] = hi[1] = hi[3] = 0u;
  }
}

// A warp owns kTiles tiles of kRows rows (1 or 2). In a tile, A-fragment row g is row 0's
// segment g of K (K/8 inputs: kJ pieces of 128) and row g + 8 is row 1's segment g; lane
// (g, c) loads 16 bytes (32 codes) of each piece of its segment. B's column g holds segment
// g of x (lane (g, c) loads it), so the diagonal C[g][g] (C[g + 8][g]) is row 0's (row 1's)
// dot over segment g, found in lane (g, g / 2); eight of them, scaled per piece (one group),
// are summed over the warp with shuffles. No shared-memory reduction, no second barrier.
template <int kTiles, int kRows, int kJ>
struct MmaRows {
  uint4 w[kTiles][kRows][kJ];
  __half scale[kTiles][kRows][kJ];
  uint8_t zero[kTiles][kRows][kJ];

  // The warp's rows row0 .. row0 + kTiles * kRows - 1; rows past N add 0 x (finite).
  __device__ __forceinline__ void load(const WbDecodeLinearParams& p, int row0) {
    const int groups = p.k / kMmaStepInputs, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int t = 0; t < kTiles; ++t)
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int j = 0; j < kJ; ++j) {
          const int row = row0 + t * kRows + r;
          w[t][r][j] = make_uint4(0, 0, 0, 0);
          scale[t][r][j] = __float2half(0.f);
          zero[t][r][j] = 8;
          if (row < p.n) {
            const int64_t grp = static_cast<int64_t>(row) * groups + g * kJ + j;
            w[t][r][j] = __ldcs(reinterpret_cast<const uint4*>(p.weight.qweight + grp * (kMmaStepInputs / 2)) + c);
            scale[t][r][j] = static_cast<const __half*>(p.weight.scales)[grp];
            if (p.weight.zeros) zero[t][r][j] = p.weight.zeros[grp];
          }
        }
  }

  // The rows' dots with the staged x (stageInput's int4 order), in every lane.
  __device__ __forceinline__ void dots(const uint4* sxq, int chunks32, float (&tot)[kTiles * kRows]) const {
    constexpr bool kSplitLoHi = kTiles * kJ < 4;  // < 4 accumulators: a second one per nibble half
    const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
    // Back-to-back mma never share an accumulator (each would wait ~30 cycles for the last).
    float acc[kTiles][kJ][kSplitLoHi ? 2 : 1][4];
#pragma unroll
    for (int t = 0; t < kTiles; ++t)
#pragma unroll
      for (int j = 0; j < kJ; ++j)
#pragma unroll
        for (int h = 0; h < (kSplitLoHi ? 2 : 1); ++h) acc[t][j][h][0] = acc[t][j][h][1] = acc[t][j][h][2] = acc[t][j][h][3] = 0.f;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      uint4 xv[kJ];
#pragma unroll
      for (int j = 0; j < kJ; ++j) xv[j] = sxq[e * chunks32 + (g * kJ + j) * 4 + c];
      uint32_t lo[kTiles][kJ][4], hi[kTiles][kJ][4];
#pragma unroll
      for (int t = 0; t < kTiles; ++t)
#pragma unroll
        for (int j = 0; j < kJ; ++j) {
          const int rb = kRows > 1 ? 1 : 0;
          const float za = zero[t][0][j], zb = zero[t][rb][j];
          unpackWord<kRows == 2>(reinterpret_cast<const uint32_t*>(&w[t][0][j])[e],
                                 reinterpret_cast<const uint32_t*>(&w[t][rb][j])[e], __float2half2_rn(1024.f + za),
                                 __float2half2_rn(1024.f + zb), __float2half2_rn(-64.f - za),
                                 __float2half2_rn(-64.f - zb), lo[t][j], hi[t][j]);
        }
#pragma unroll
      for (int t = 0; t < kTiles; ++t)
#pragma unroll
        for (int j = 0; j < kJ; ++j) mma16816(acc[t][j][0], lo[t][j], xv[j].x, xv[j].z);
#pragma unroll
      for (int t = 0; t < kTiles; ++t)
#pragma unroll
        for (int j = 0; j < kJ; ++j) mma16816(acc[t][j][kSplitLoHi ? 1 : 0], hi[t][j], xv[j].y, xv[j].w);
    }
    // The diagonal: lane (g, g / 2) holds C[g][g] in element g & 1 and C[g + 8][g] in 2 + (g & 1).
    const bool diag = c == (g >> 1);
#pragma unroll
    for (int t = 0; t < kTiles; ++t)
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float v = 0.f;
#pragma unroll
        for (int j = 0; j < kJ; ++j) {
          float d = (g & 1) ? acc[t][j][0][2 * r + 1] : acc[t][j][0][2 * r];
          if (kSplitLoHi) d += (g & 1) ? acc[t][j][kSplitLoHi ? 1 : 0][2 * r + 1] : acc[t][j][kSplitLoHi ? 1 : 0][2 * r];
          v = fmaf(__half2float(scale[t][r][j]), d, v);
        }
        v = diag ? v : 0.f;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        tot[t * kRows + r] = v;
      }
  }
};

// One pass over the rows for every output but ARGMAX (the grid covers them); the LM head's
// resident grid loops, fetching its next rows' weights before the products of these.
template <int kIn, int kOut, int kRows, int kTiles, int kJ>
__global__ void __launch_bounds__(kMmaMaxWarps * 32) decodeLinearMmaKernel(const WbDecodeLinearParams p) {
  constexpr int kRowsPerWarp = kTiles * kRows;
  extern __shared__ float4 smem[];
  const StagedInput staged(smem, p.k, true);
  __shared__ float scratch[2 * kMmaMaxWarps];
  __shared__ float bestValue[kMmaMaxWarps];
  __shared__ int bestIndex[kMmaMaxWarps];
  __shared__ bool lastBlock;

  const int n = p.n, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int warpRow0 = (blockIdx.x * (blockDim.x >> 5) + warp) * kRowsPerWarp;
  const int stride = gridDim.x * (blockDim.x >> 5) * kRowsPerWarp;
  MmaRows<kTiles, kRows, kJ> cur;
  cur.load(p, warpRow0);

  // As decodeLinearKernel: constant weights, LayerNorm parameters, bias (and the residual
  // element, two kernels back) before the wait; lane l < kRowsPerWarp finishes row l.
  constexpr bool kNorm = kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_EMBED || kIn == WB_DECODE_IN_HEADS;
  if (kNorm) stageLayerNormParams(p, staged.sln);
  float bias = 0.f, residual = 0.f;
  if (lane < kRowsPerWarp && warpRow0 + lane < n) {
    if (p.weight.bias) bias = __half2float(static_cast<const __half*>(p.weight.bias)[warpRow0 + lane]);
    residual = residualBeforeWait<kOut>(p, warpRow0 + lane);
  }
  const int64_t attnPos = kIn == WB_DECODE_IN_ATTENTION ? __ldcg(p.position) : -1;
  waitForPrevious();
  releaseDependents();
  const int64_t stepPos = kOut == WB_DECODE_OUT_QKV ? __ldcg(p.position) : 0;
  stageInput<kIn, true, true, kHeadsSums<kIn, kOut>>(p, staged.sx, staged.sxq, staged.sln, scratch, attnPos);

  float best = -FLT_MAX;
  int bestIdx = 0x7fffffff;
  auto finish = [&](const float (&tot)[kRowsPerWarp], int row, bool first, float b) {
    float value = tot[0];
#pragma unroll
    for (int i = 1; i < kRowsPerWarp; ++i)
      if (lane == i) value = tot[i];
    storeRow<kOut>(p, row, value + b, first, residual, stepPos, best, bestIdx);
  };
  if constexpr (kOut != WB_DECODE_OUT_ARGMAX) {
    float tot[kRowsPerWarp];
    cur.dots(staged.sxq, p.k / 32, tot);
    if (lane < kRowsPerWarp && warpRow0 + lane < n) finish(tot, warpRow0 + lane, true, bias);
  } else {
    for (int row0 = warpRow0; row0 < n; row0 += stride) {
      const bool more = row0 + stride < n;  // uniform over the warp
      MmaRows<kTiles, kRows, kJ> next;
      if (more) next.load(p, row0 + stride);
      float tot[kRowsPerWarp];
      cur.dots(staged.sxq, p.k / 32, tot);
      const int row = row0 + lane;
      if (lane < kRowsPerWarp && row < n) {
        const bool first = row0 == warpRow0;
        finish(tot, row, first,
               first || !p.weight.bias ? bias : __half2float(static_cast<const __half*>(p.weight.bias)[row]));
      }
      if (more) cur = next;
    }
    argmaxFinish(p, best, bestIdx, bestValue, bestIndex, &lastBlock);
  }
}

}  // namespace
}  // namespace wbk
