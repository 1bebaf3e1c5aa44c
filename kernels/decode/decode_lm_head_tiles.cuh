// ln_f + the int4 LM head + argmax with 16 rows a tensor-core tile (WbDecodeRowTiles), and
// the pass over a tile's codes (TilePass) that the MLP block's c_fc shares. Included by
// decode.cu and decode_mlp_block.cu.
//
// Why: the step's LM head (decode_int4_mma.cuh, 4 rows a warp) is bound by instruction
// issue, not by its weight stream (docs/PERF.md, "What bounds the LM head": 7.0 M warp
// instructions, issue slots 57% busy, tensor pipe 9.5%). It puts a segment of K in each
// column of B and keeps only the diagonal of every mma, which then takes 20 shuffles
// per four rows to sum. Here x fills every column of B, so one mma.m16n8k16 multiplies
// 16 rows by 16 inputs and each lane ends with the whole dots of its rows g and g + 8;
// the codes are repacked once (core/model/int4_row_tiles.h) so that each lane's 32-bit
// word is its A fragment in the order lop3 unpacks it. One mma per 8 codes a lane instead
// of two, and no reduction over the warp. A warp streams its tile's codes in passes of a
// few 16-byte loads a lane, one pass ahead of its products.
#pragma once

#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/decode/decode_device.cuh"
#include "kernels/decode/decode_int4_mma.cuh"

namespace wbk {
namespace {

constexpr int kTileWarps = 8;  // warps a row-tile block, one tile each at a time

// A pass of a warp over its tile: kPass of a lane's 16-byte loads (kPass * 64 inputs,
// whole groups of 128) with their groups' scales and zero points.
template <int kPass>
struct TilePass {
  uint4 w[kPass];
  uint32_t scale[kPass / 2], zero[kPass / 2];

  // Pass `pass` of tile `tile` (nothing past the last tile), evict-first: the head's 26 MB
  // must not push the KV cache out of L2 (docs/PERF.md, "The int4 LM head through shared memory").
  __device__ __forceinline__ void load(const WbDecodeRowTiles& rt, int tiles, int chunks, int tile, int pass) {
    if (tile >= tiles) return;
    const int lane = threadIdx.x & 31, g = lane >> 2, a0 = pass * kPass;
    // 32-bit offsets (a head of up to 2^27 tiles' words): 64-bit ones cost registers.
    const uint4* codes = reinterpret_cast<const uint4*>(rt.codes) + ((static_cast<uint32_t>(tile) * chunks + a0) * 32 + lane);
    const uint32_t pair = (static_cast<uint32_t>(tile) * (chunks / 2) + a0 / 2) * 8 + g;
#pragma unroll
    for (int i = 0; i < kPass; ++i) w[i] = __ldcs(codes + i * 32);
#pragma unroll
    for (int i = 0; i < kPass / 2; ++i) {
      scale[i] = __ldcs(rt.scales + pair + i * 8);
      zero[i] = rt.zeros ? static_cast<uint32_t>(__ldcs(reinterpret_cast<const unsigned short*>(rt.zeros) + pair + i * 8))
                         : 0x0808u;  // symmetric: codes offset by 8
    }
  }

  // Adds this pass's groups into rows g (lo) and g + 8 (hi) of the tile. The staged x is
  // in the int4 order of decode_device.cuh; lane c's B at k-step j of chunk a is chunk
  // 16 grp + 4 c + t of it, an even k-step taking its first two pairs and an odd one the
  // last two (core/model/int4_row_tiles.cpp).
  __device__ __forceinline__ void dots(const uint4* sxq, int chunks32, int pass, float& lo, float& hi) const {
    const int lane = threadIdx.x & 31, c = lane & 3;
    const __half2 sixteenth = __float2half2_rn(0.0625f);
#pragma unroll
    for (int gi = 0; gi < kPass / 2; ++gi) {
      const int grp = pass * (kPass / 2) + gi;
      const float2 s = __half22float2(asHalf2(scale[gi]));
      // (1024 + n) - (1024 + z) for the low nibbles, (1024 + 16 n) / 16 - (64 + z) for the high ones.
      const __half2 zzLo = __float2half2_rn(1024.f + static_cast<float>(zero[gi] & 0xffu));
      const __half2 zzHi = __float2half2_rn(-64.f - static_cast<float>(zero[gi] >> 8));
      float even[4] = {0.f, 0.f, 0.f, 0.f}, odd[4] = {0.f, 0.f, 0.f, 0.f};  // back-to-back mma never wait on each other
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint32_t* q = reinterpret_cast<const uint32_t*>(&w[2 * gi + h]);
#pragma unroll
        for (int t = 0; t < 2; ++t) {
          const uint4 xv = sxq[(2 * h + t) * chunks32 + 4 * grp + c];
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            const uint32_t qw = q[2 * t + j], q8 = qw >> 8;
            uint32_t fr[4];
            fr[0] = asU32(__hsub2(asHalf2(lop3Nibbles(qw)), zzLo));                 // row g: (n0, n4)
            fr[1] = asU32(__hfma2(asHalf2(lop3HighNibbles(qw)), sixteenth, zzHi));  // row g + 8: (n1, n5)
            fr[2] = asU32(__hsub2(asHalf2(lop3Nibbles(q8)), zzLo));                 // row g: (n2, n6)
            fr[3] = asU32(__hfma2(asHalf2(lop3HighNibbles(q8)), sixteenth, zzHi));  // row g + 8: (n3, n7)
            if (j == 0) {
              mma16816(even, fr, xv.x, xv.y);
            } else {
              mma16816(odd, fr, xv.z, xv.w);
            }
          }
        }
      }
      // Every column of D holds the same dot: element 0 is row g's, element 2 row g + 8's.
      lo = fmaf(s.x, even[0] + odd[0], lo);
      hi = fmaf(s.y, even[2] + odd[2], hi);
    }
  }
};

// kChunks = K / 64 (a lane's 16-byte loads a tile), taken kPass at a time, one pass ahead.
// At most 80 registers, so that three blocks of 8 warps fit an SM: GPT-2 medium's 3,142
// tiles then take one warp each (with two blocks an SM they fall unevenly, docs/PERF.md).
// kWarps: the decoder's launch takes kTileWarps; other shapes are for decode_lm_head.cu.
template <int kIn, int kChunks, int kPass, int kMinBlocks = 3, int kWarps = kTileWarps>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks) decodeLmHeadTilesKernel(const WbDecodeLinearParams p) {
  static_assert(kChunks % kPass == 0 && kPass % 2 == 0, "a pass takes whole groups of a tile");
  constexpr int kPasses = kChunks / kPass;
  extern __shared__ float4 smem[];
  const StagedInput staged(smem, p.k, true);
  __shared__ float scratch[2 * kWarps];
  __shared__ float bestValue[kWarps];
  __shared__ int bestIndex[kWarps];
  __shared__ bool lastBlock;

  const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const int tiles = (p.n + 15) / 16, stride = gridDim.x * kWarps;
  int tile = blockIdx.x * kWarps + (threadIdx.x >> 5);
  TilePass<kPass> cur;
  cur.load(p.rowTiles, tiles, kChunks, tile, 0);
  // As the other GEMVs: constant weights and LayerNorm parameters before the wait.
  stageLayerNormParams(p, staged.sln);
  waitForPrevious();
  releaseDependents();
  stageInput<kIn, true, true, kHeadsSums<kIn, WB_DECODE_OUT_ARGMAX>>(p, staged.sx, staged.sxq, staged.sln, scratch);

  const int chunks32 = p.k / 32;
  float best = -FLT_MAX, lo = 0.f, hi = 0.f;  // lo, hi: rows g and g + 8 of the tile
  int bestIdx = 0x7fffffff, pass = 0;
#pragma unroll 1
  while (tile < tiles) {  // uniform over the warp
    const bool lastPass = pass == kPasses - 1;
    TilePass<kPass> next;
    next.load(p.rowTiles, tiles, kChunks, lastPass ? tile + stride : tile, lastPass ? 0 : pass + 1);
    cur.dots(staged.sxq, chunks32, pass, lo, hi);
    if (lastPass) {
      const int row = tile * 16 + g + (c == 1 ? 8 : 0);
      if (c < 2 && row < p.n) {
        const float b = p.weight.bias ? __half2float(static_cast<const __half*>(p.weight.bias)[row]) : 0.f;
        storeRow<WB_DECODE_OUT_ARGMAX>(p, row, (c == 0 ? lo : hi) + b, false, 0.f, 0, best, bestIdx);
      }
      lo = hi = 0.f;
      tile += stride;
      pass = 0;
    } else {
      ++pass;
    }
    cur = next;
  }
  argmaxFinish(p, best, bestIdx, bestValue, bestIndex, &lastBlock);
}

}  // namespace
}  // namespace wbk
