// ln_2 + c_fc + GELU + mlp.c_proj of one layer in one launch; see decode.h.
// Why: a decode layer is bound by its dependent hand-overs and each kernel's input
// staging, not by bandwidth (docs/PERF.md), and mlp.c_proj needs the whole hidden vector
// only because its rows are split by output. Split by input instead, each block's 32
// hidden units make a complete partial sum of every output, and the partials meet in one
// fp32 vector through atomics that the next kernel reads with its own input: one launch,
// one staging and one hand-over fewer a layer. Both products run on tensor cores
// (c_fc in the row tiles of decode_lm_head_tiles.cuh, or the diagonal layout of
// decode_int4_mma.cuh; here c_proj with the units as A and the weights as B, so each
// lane ends with pairs of adjacent outputs, four of them one float4 atomic).
#include <cuda_fp16.h>

#include "kernels/common/status_internal.h"
#include "kernels/decode/decode.h"
#include "kernels/decode/decode_device.cuh"
#include "kernels/decode/decode_int4_mma.cuh"
#include "kernels/decode/decode_launch.h"
#include "kernels/decode/decode_lm_head_tiles.cuh"

namespace wbk {
namespace {

constexpr int kMlpEmbd = 1024;         // E: c_fc's K (four rows a warp in the diagonal layout)
constexpr int kMlpWarps = 8;
constexpr int kMlpUnits = 32;          // hidden units a block: 8 warps x 4 c_fc rows
constexpr int kMlpOutWarp = kMlpEmbd / kMlpWarps;  // c_proj outputs a warp: 16 tiles of 8
constexpr int kMlpTiles = kMlpOutWarp / 8;
using FcRows = MmaRows<2, 2, 1>;       // K = 1024: two tiles of two rows a warp
// c_fc in row tiles (kTiles): the block's 32 units are two tiles of 16 rows, each split
// over four warps by a quarter of K (two groups: one pass of four 16-byte loads a lane);
// the quarters meet in shared memory. A tile's mma gives whole dots of 16 rows where the
// diagonal layout spends two mma and a sum over the warp on every four.
constexpr int kFcQuarterChunks = kMlpEmbd / 64 / 4;
using FcTilePass = TilePass<kFcQuarterChunks>;

template <bool kTiles>
__global__ void __launch_bounds__(kMlpWarps * 32) mlpBlockKernel(const WbDecodeMlpBlockParams mp) {
  const WbDecodeLinearParams& p = mp.fc;
  extern __shared__ float4 smem[];
  const StagedInput staged(smem, kMlpEmbd, true);
  __shared__ float scratch[2 * kMlpWarps];
  __shared__ float hs[kMlpUnits];
  __shared__ float fcQuarters[kTiles ? 4 : 1][kMlpUnits];

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const int inner = p.n, u0 = blockIdx.x * kMlpUnits;

  // Constant inputs before the wait: the warp's c_fc codes (four rows, or a quarter of a
  // tile) and the bias; word c of the block's 16 bytes (its 32 units) of each of the
  // warp's c_proj outputs 8t + g; the scales and zero points of the four outputs this
  // lane adds (8t + 2c, + 1 for t = g, g + 8: one group, since 32 units never straddle
  // one of 128); the LayerNorm.
  FcRows fc;
  FcTilePass fcTile;
  const int fcTileIndex = blockIdx.x * 2 + (warp >> 2), fcQuarter = warp & 3;
  if constexpr (kTiles) {
    fcTile.load(mp.fcTiles, inner / 16, kMlpEmbd / 64, fcTileIndex, fcQuarter);
  } else {
    fc.load(p, u0 + warp * 4);
  }
  const int fcUnit = kTiles ? threadIdx.x : warp * 4 + lane;  // the unit this thread finishes, if < 32 (tiles) or lane < 4
  const bool finishes = kTiles ? threadIdx.x < kMlpUnits : lane < 4;
  const float fcBias =
      finishes && p.weight.bias ? __half2float(static_cast<const __half*>(p.weight.bias)[u0 + fcUnit]) : 0.f;
  const int out0 = warp * kMlpOutWarp;
  uint32_t pw[kMlpTiles];
#pragma unroll
  for (int t = 0; t < kMlpTiles; ++t)
    pw[t] = __ldcs(reinterpret_cast<const uint32_t*>(mp.proj.qweight + static_cast<int64_t>(out0 + 8 * t + g) *
                                                                           (inner / 2) + u0 / 2) + c);
  const int groups = inner / kMmaStepInputs, grp = u0 / kMmaStepInputs;
  float ps[2][2], pz[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int64_t at = static_cast<int64_t>(out0 + 8 * (g + 8 * i) + 2 * c + j) * groups + grp;
      ps[i][j] = __half2float(static_cast<const __half*>(mp.proj.scales)[at]);
      pz[i][j] = mp.proj.zeros ? static_cast<float>(mp.proj.zeros[at]) : 8.f;
    }
  stageLayerNormParams(p, staged.sln);
  waitForPrevious();
  releaseDependents();

  // The sums the previous kernels consumed, zeroed for their next accumulation.
  const int first = blockIdx.x * blockDim.x + threadIdx.x, stride = gridDim.x * blockDim.x;
  const float4 zero4 = make_float4(0.f, 0.f, 0.f, 0.f);
  if (mp.clearSums)
    for (int i = first; i < WB_DECODE_MLP_SUMS * kMlpEmbd / 4; i += stride) reinterpret_cast<float4*>(mp.clearSums)[i] = zero4;
  if (mp.clearHeads)
    for (int i = first; i < kMlpEmbd / 4; i += stride) reinterpret_cast<float4*>(mp.clearHeads)[i] = zero4;
  stageInput<WB_DECODE_IN_HEADS, true, true, 1>(p, staged.sx, staged.sxq, staged.sln, scratch);

  // c_fc + bias + GELU for the block's units, each rounded to fp16 as the eager path.
  if constexpr (kTiles) {
    float lo = 0.f, hi = 0.f;
    fcTile.dots(staged.sxq, kMlpEmbd / 32, fcQuarter, lo, hi);
    if (c == 0) {
      fcQuarters[fcQuarter][(warp >> 2) * 16 + g] = lo;
      fcQuarters[fcQuarter][(warp >> 2) * 16 + g + 8] = hi;
    }
    __syncthreads();
    if (finishes) {
      const float v = (fcQuarters[0][fcUnit] + fcQuarters[1][fcUnit]) + (fcQuarters[2][fcUnit] + fcQuarters[3][fcUnit]);
      hs[fcUnit] = roundHalf(geluTanh(roundHalf(v + fcBias)));
    }
  } else {
    float tot[4];
    fc.dots(staged.sxq, kMlpEmbd / 32, tot);
    if (finishes) {
      float v = tot[0];
#pragma unroll
      for (int i = 1; i < 4; ++i)
        if (lane == i) v = tot[i];
      hs[fcUnit] = roundHalf(geluTanh(roundHalf(v + fcBias)));
    }
  }
  __syncthreads();

  // c_proj: A = the 32 units (every row the same), in the int4 order of chunk c so that
  // A's k pairs meet the nibble pairs of the lane's word; B = the weights, column g output
  // 8t + g. Codes enter as 0..15; the zero point comes off afterwards: s (C - z S).
  float h[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) h[i] = hs[8 * c + i];
  const uint4 hv = packInt4Order(h);
  float unitSum = ((h[0] + h[1]) + (h[2] + h[3])) + ((h[4] + h[5]) + (h[6] + h[7]));
  unitSum += __shfl_xor_sync(0xffffffffu, unitSum, 1);
  unitSum += __shfl_xor_sync(0xffffffffu, unitSum, 2);
  const uint32_t aLo[4] = {hv.x, hv.x, hv.z, hv.z}, aHi[4] = {hv.y, hv.y, hv.w, hv.w};
  const __half2 k1024 = __float2half2_rn(1024.f), sixteenth = __float2half2_rn(0.0625f),
                m64 = __float2half2_rn(-64.f);
  float mine[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
#pragma unroll
  for (int t = 0; t < kMlpTiles; ++t) {
    const uint32_t w = pw[t], w8 = w >> 8;
    const uint32_t bLo0 = asU32(__hsub2(asHalf2(lop3Nibbles(w)), k1024));   // nibbles (0, 4)
    const uint32_t bLo1 = asU32(__hsub2(asHalf2(lop3Nibbles(w8)), k1024));  // (2, 6)
    const uint32_t bHi0 = asU32(__hfma2(asHalf2(lop3HighNibbles(w)), sixteenth, m64));   // (1, 5)
    const uint32_t bHi1 = asU32(__hfma2(asHalf2(lop3HighNibbles(w8)), sixteenth, m64));  // (3, 7)
    float d[4] = {0.f, 0.f, 0.f, 0.f}, e[4] = {0.f, 0.f, 0.f, 0.f};
    mma16816(d, aLo, bLo0, bLo1);
    mma16816(e, aHi, bHi0, bHi1);
    if ((t & 7) == g) {  // outputs 8t + 2c, 8t + 2c + 1 of this lane's tiles g and g + 8
      mine[t >> 3][0] = d[0] + e[0];
      mine[t >> 3][1] = d[1] + e[1];
    }
  }
  // Lanes with an even c take their neighbour's pair: four adjacent outputs, one atomic.
  float* sums = mp.accumulate + (blockIdx.x % WB_DECODE_MLP_SUMS) * kMlpEmbd;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float v0 = ps[i][0] * (mine[i][0] - pz[i][0] * unitSum);
    const float v1 = ps[i][1] * (mine[i][1] - pz[i][1] * unitSum);
    const float n0 = __shfl_down_sync(0xffffffffu, v0, 1), n1 = __shfl_down_sync(0xffffffffu, v1, 1);
    if ((c & 1) == 0)
      atomicAdd(reinterpret_cast<float4*>(sums + out0 + 8 * (g + 8 * i) + 2 * c), make_float4(v0, v1, n0, n1));
  }
}

WbStatus checkMlpBlock(const WbDecodeMlpBlockParams* params) {
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: params is NULL");
  const WbDecodeLinearParams& p = params->fc;
  const WbDecodeWeight& proj = params->proj;
  if (!wbDecodeMlpBlockSupported(p.k, p.n, p.weight.groupSize) || proj.groupSize != kMmaStepInputs)
    return fail(WB_STATUS_UNSUPPORTED, "decode MLP block: needs E = %d, inner a multiple of %d and int4 groups of %d "
                "(got E %d, inner %d, groups %d and %d)", kMlpEmbd, kMlpUnits, kMmaStepInputs, p.k, p.n,
                p.weight.groupSize, proj.groupSize);
  if (p.input != WB_DECODE_IN_HEADS || !p.x || !p.lnWeight || !p.lnBias || !p.headPartials || !p.headBias ||
      p.headCount != 1 || p.lnTwoPass)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: needs a heads input of one sum (x, LayerNorm, "
                "headPartials, headBias, headCount 1; one-pass LayerNorm)");
  for (const void* ptr : {p.x, p.lnWeight, p.lnBias, static_cast<const void*>(p.headPartials), p.headBias,
                          static_cast<const void*>(p.weight.qweight), static_cast<const void*>(proj.qweight),
                          static_cast<const void*>(params->accumulate), static_cast<const void*>(p.residual)})
    if (reinterpret_cast<uintptr_t>(ptr) % 16)
      return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: vectors and weights must be 16-byte aligned");
  const WbDecodeRowTiles& tiles = params->fcTiles;
  if ((!p.weight.qweight && !tiles.codes) || (!p.weight.scales && !tiles.codes) || !proj.qweight || !proj.scales ||
      !params->accumulate)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: needs int4 c_fc and c_proj (codes, scales) and accumulate");
  if (tiles.codes && (!tiles.scales || reinterpret_cast<uintptr_t>(tiles.codes) % 16))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: c_fc's row tiles need scales and 16-byte aligned codes");
  for (const float* c : {params->clearSums, params->clearHeads})
    if (c == params->accumulate || c == p.headPartials || reinterpret_cast<uintptr_t>(c) % 16)
      return fail(WB_STATUS_INVALID_ARGUMENT,
                  "decode MLP block: a cleared sum must be 16-byte aligned, and neither accumulate nor the input's");
  if (p.sharedCarveout < 0 || p.sharedCarveout > 100)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: sharedCarveout %d is not 0 (no request) or 1..100 percent",
                p.sharedCarveout);
  return WB_STATUS_OK;
}

}  // namespace
}  // namespace wbk

extern "C" int wbDecodeMlpBlockSupported(int embd, int inner, int groupSize) {
  return embd == wbk::kMlpEmbd && inner > 0 && inner % wbk::kMlpUnits == 0 && groupSize == wbk::kMmaStepInputs;
}

extern "C" WbStatus wbDecodeMlpBlock(const WbDecodeMlpBlockParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (WbStatus s = checkMlpBlock(params); s != WB_STATUS_OK) return s;
  const WbDecodeLinearParams& p = params->fc;
  // x in fp32 and its int4-ordered copy, the LayerNorm's weight and bias (as a GEMV block's).
  const size_t smem = static_cast<size_t>(kMlpEmbd) * (sizeof(float) + 2 + 4);
  const void* kernel = params->fcTiles.codes ? reinterpret_cast<const void*>(mlpBlockKernel<true>)
                                             : reinterpret_cast<const void*>(mlpBlockKernel<false>);
  return launchDecodeKernel(kernel, dim3(p.n / kMlpUnits),
                            dim3(kMlpWarps * 32), smem, p.programmaticLaunch != 0, p.sharedCarveout, stream,
                            "decode MLP block launch", const_cast<WbDecodeMlpBlockParams*>(params));
}
