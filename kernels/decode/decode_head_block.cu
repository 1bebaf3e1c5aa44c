// The attention block with one block a head (WbDecodeAttentionBlockParams::headBlock):
// ln_1 + c_attn + attention + attn.c_proj of one layer in one launch; see decode.h.
// Why: the cluster kernel (decode_attention_block.cu) spends ~2.2 of its ~7.5 us a layer
// in its two cluster exchanges (q/k/v, then the softmax partials), whose barriers wait
// for the slowest of eight blocks (docs/PERF.md, "Four restructurings of the layer").
// One block of 8 warps holds a head's 192 c_attn rows (96 KB of int4 codes) and the
// head's cached keys in shared memory, fetched asynchronously before the programmatic
// wait, and computes the rows on tensor cores (MmaRows); both exchanges become block
// barriers. 16 blocks read no more weight bytes than 128 did, and they read them while
// the previous kernel runs.
#include <cuda_fp16.h>

#include <cfloat>

#include "kernels/common/status_internal.h"
#include "kernels/decode/decode.h"
#include "kernels/decode/decode_device.cuh"
#include "kernels/decode/decode_head_block.h"
#include "kernels/decode/decode_int4_mma.cuh"
#include "kernels/decode/decode_launch.h"

namespace wbk {
namespace {

constexpr int kHbEmbd = 1024, kHbHeadDim = 64, kHbWarps = 8, kHbThreads = kHbWarps * 32;
// At most 112 registers: the block must fit beside an MLP block (256 threads x 144) while
// that one runs, so that its weights and keys land before its wait (programmatic launch).
constexpr int kHbMaxRegisters = 112;
constexpr int kHbRows = 3 * kHbHeadDim;              // c_attn rows of a head: q, k, v
constexpr int kHbRowChunks = kHbEmbd / 32;           // 16-byte chunks of codes a row (lane l reads chunk l)
constexpr int kHbGroups = kHbEmbd / kMmaStepInputs;  // scales a row
constexpr int kHbWarpRows = kHbRows / kHbWarps;      // 24 rows a warp, four (two 2-row tiles) a round
constexpr int kHbRounds = kHbWarpRows / 4;
constexpr int kHbTileKeys = kHbThreads / 8;          // 32 keys a tile: eight threads a key, eight dims each
constexpr int kHbProjRows = kHbEmbd / kHbWarps;      // attn.c_proj rows a warp, 16 a pass (2 lanes a row)
constexpr int kHbProjPasses = kHbProjRows / 16;
static_assert(kHbWarpRows % 4 == 0 && kHbProjRows % 16 == 0, "whole tiles and passes");

struct HeadShared {
  float qkv[kHbRows];  // q, k and v of the head, fp16-rounded
  float warpM[kHbWarps], warpL[kHbWarps], warpO[kHbWarps][kHbHeadDim];
  alignas(16) float o[kHbHeadDim];  // the head's attention output, fp16-rounded
  uint4 oq[kHbHeadDim / 8];         // the same in stageInput's int4 order
  float scratch[2 * kHbWarps];
};

// Dynamic shared memory, in this order (every size a multiple of 16 bytes): the c_attn
// codes [192 rows][32 chunks], scales [192][8] and zero points [192][8]; x in fp32 and in
// the int4 order; the LayerNorm's weight and bias; the cache tiles [tile][key][k, v][64].
constexpr size_t kHbCodesBytes = static_cast<size_t>(kHbRows) * kHbRowChunks * 16;
constexpr size_t kHbScalesBytes = static_cast<size_t>(kHbRows) * kHbGroups * 2;
constexpr size_t kHbZerosBytes = static_cast<size_t>(kHbRows) * kHbGroups;
constexpr size_t kHbInputBytes = static_cast<size_t>(kHbEmbd) * (4 + 2 + 4);
constexpr size_t kHbTileBytes = static_cast<size_t>(kHbTileKeys) * 2 * kHbHeadDim * 2;

__host__ __device__ constexpr int headTiles(int capacity) { return (capacity + kHbTileKeys - 1) / kHbTileKeys; }
size_t headDynamicBytes(int capacity) {
  return kHbCodesBytes + kHbScalesBytes + kHbZerosBytes + kHbInputBytes + headTiles(capacity) * kHbTileBytes;
}

// Local c_attn row r (q dims, then k, then v) of `head` as a row of the [3E, E] weight.
__device__ __forceinline__ int qkvRow(int head, int r) {
  return (r / kHbHeadDim) * kHbEmbd + head * kHbHeadDim + r % kHbHeadDim;
}

template <int kIn>
__global__ void __maxnreg__(kHbMaxRegisters) headBlockKernel(const WbDecodeAttentionBlockParams ab) {
  const WbDecodeLinearParams& p = ab.qkv;
  const int head = static_cast<int>(blockIdx.x), tid = static_cast<int>(threadIdx.x);
  const int warp = tid >> 5, lane = tid & 31, g = lane >> 2;
  extern __shared__ float4 smem[];
  char* base = reinterpret_cast<char*>(smem);
  uint4* sCodes = reinterpret_cast<uint4*>(base);
  __half* sScales = reinterpret_cast<__half*>(base + kHbCodesBytes);
  uint8_t* sZeros = reinterpret_cast<uint8_t*>(base + kHbCodesBytes + kHbScalesBytes);
  float* sx = reinterpret_cast<float*>(base + kHbCodesBytes + kHbScalesBytes + kHbZerosBytes);
  uint4* sxq = reinterpret_cast<uint4*>(sx + kHbEmbd);
  __half* sln = reinterpret_cast<__half*>(sxq + kHbEmbd / 8);
  __half* skv = sln + 2 * kHbEmbd;
  __shared__ HeadShared sh;

  // The head's c_attn codes and scales, in flight while the previous kernel runs (group 1).
#ifndef HB_SKIP_CODES
  for (int i = tid; i < kHbRows * kHbRowChunks; i += kHbThreads) {
    const int r = i / kHbRowChunks, c = i % kHbRowChunks;
    cpAsync16(sCodes + i, reinterpret_cast<const uint4*>(p.weight.qweight +
                                                         static_cast<int64_t>(qkvRow(head, r)) * (kHbEmbd / 2)) + c);
  }
  if (tid < kHbRows)
    cpAsync16(sScales + tid * kHbGroups,
              static_cast<const __half*>(p.weight.scales) + static_cast<int64_t>(qkvRow(head, tid)) * kHbGroups);
#endif
  cpAsyncCommit();
  for (int i = tid; i < kHbRows * kHbGroups; i += kHbThreads)
    sZeros[i] = p.weight.zeros ? p.weight.zeros[static_cast<int64_t>(qkvRow(head, i / kHbGroups)) * kHbGroups +
                                                i % kHbGroups]
                               : 8;
  // Lane l < 24 of warp w finishes local row 24w + l: its bias.
  const int warpRow0 = warp * kHbWarpRows;
  const float qkvBias = lane < kHbWarpRows && p.weight.bias
                            ? __half2float(static_cast<const __half*>(p.weight.bias)[qkvRow(head, warpRow0 + lane)])
                            : 0.f;

  // attn.c_proj: output rows warp * 128 + 16v + lane / 2, this head's 64 inputs (two
  // lanes of 32 a row), in registers.
  const int projSub = lane & 1, projRow0 = warp * kHbProjRows;
  uint4 wp[kHbProjPasses];
  __half pScale[kHbProjPasses];
  uint8_t pZero[kHbProjPasses];
#pragma unroll
  for (int v = 0; v < kHbProjPasses; ++v) {
    const int64_t row = projRow0 + 16 * v + lane / 2;
    wp[v] = __ldcs(reinterpret_cast<const uint4*>(ab.proj.qweight) + row * (kHbEmbd / 32) + 2 * head + projSub);
    const int64_t grp = row * kHbGroups + (head * kHbHeadDim + projSub * 32) / kMmaStepInputs;
    pScale[v] = static_cast<const __half*>(ab.proj.scales)[grp];
    pZero[v] = ab.proj.zeros ? ab.proj.zeros[grp] : 8;
  }
  stageLayerNormParams(p, sln);

  // The head's keys before the position (written by earlier steps): thread (kg, j8) copies
  // dims 8 j8 .. 8 j8 + 7 of key kg of each tile (group 2).
  const int kg = tid >> 3, j8 = tid & 7;
  const int tiles = headTiles(p.capacity);
  auto fetchKeys = [&](int64_t pos) {
#ifdef HB_SKIP_KEYS
    if (pos >= 0) { cpAsyncCommit(); return; }
#endif
    for (int i = 0; i < tiles; ++i) {
      const int64_t t = static_cast<int64_t>(i) * kHbTileKeys + kg;
      if (t >= pos) break;
      const int64_t src = (static_cast<int64_t>(head) * p.capacity + t) * kHbHeadDim + j8 * 8;
      __half* dst = skv + (t * 2) * kHbHeadDim + j8 * 8;
      cpAsync16(dst, static_cast<const __half*>(p.kCache) + src);
      cpAsync16(dst + kHbHeadDim, static_cast<const __half*>(p.vCache) + src);
    }
    cpAsyncCommit();
  };
  // As the cluster kernel: the position was advanced two or more kernels back, except
  // for the first layer's (EMBED), whose predecessor is the argmax.
  int64_t pos = 0;
  if (kIn != WB_DECODE_IN_EMBED) {
    pos = __ldcg(p.position);
    fetchKeys(pos);
  }
  waitForPrevious();
  releaseDependents();
  if (kIn == WB_DECODE_IN_EMBED) {
    pos = __ldcg(p.position);
    fetchKeys(pos);
  }
  cpAsyncWaitPending<1>();  // this thread's codes and scales; the staging's barrier shows all of them
  stageInput<kIn, true, true, kIn == WB_DECODE_IN_HEADS ? WB_DECODE_MLP_SUMS : 0>(p, sx, sxq, sln, sh.scratch);

  // c_attn on tensor cores, two 2-row tiles at a time; rounded to fp16 as the eager path.
  float mine = 0.f;
#pragma unroll 2
  for (int round = 0; round < kHbRounds; ++round) {
    MmaRows<2, 2, 1> rows;
#pragma unroll
    for (int t = 0; t < 2; ++t)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int lr = warpRow0 + 4 * round + 2 * t + r;
        rows.w[t][r][0] = sCodes[lr * kHbRowChunks + lane];
        rows.scale[t][r][0] = sScales[lr * kHbGroups + g];
        rows.zero[t][r][0] = sZeros[lr * kHbGroups + g];
      }
    float tot[4] = {0.f, 0.f, 0.f, 0.f};
#ifndef HB_SKIP_PRODUCTS
    rows.dots(sxq, kHbEmbd / 32, tot);
#else
    tot[0] = __half2float(rows.scale[0][0][0]) + static_cast<float>(rows.w[1][1][0].x & 1);
#endif
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (lane == 4 * round + k) mine = tot[k];
  }
  if (lane < kHbWarpRows) sh.qkv[warpRow0 + lane] = roundHalf(mine + qkvBias);
  cpAsyncWaitPending<0>();  // the keys this thread copied
  __syncthreads();
  if (tid < kHbHeadDim && pos < p.capacity) {
    const int64_t at = (static_cast<int64_t>(head) * p.capacity + pos) * kHbHeadDim + tid;
    static_cast<__half*>(p.kCache)[at] = __float2half_rn(sh.qkv[kHbHeadDim + tid]);
    static_cast<__half*>(p.vCache)[at] = __float2half_rn(sh.qkv[2 * kHbHeadDim + tid]);
  }

  // Attention: eight lanes a key, an online softmax over the tiles, then the warp's four
  // keys' partials, then the block's eight warps'.
  float qf[8], o[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) qf[i] = sh.qkv[j8 * 8 + i], o[i] = 0.f;
  const float scale = ab.scale * kLog2e;
  float m = -FLT_MAX, l = 0.f;
  for (int i = 0; i < tiles; ++i) {
    const int64_t t0 = static_cast<int64_t>(i) * kHbTileKeys;
    if (t0 > pos) break;  // uniform over the block: the shuffles below need every lane
    const int64_t t = t0 + kg;
    float kf[8], vf[8];
    if (t == pos) {
#pragma unroll
      for (int x = 0; x < 8; ++x) kf[x] = sh.qkv[kHbHeadDim + j8 * 8 + x], vf[x] = sh.qkv[2 * kHbHeadDim + j8 * 8 + x];
    } else {
      uint4 kr = make_uint4(0, 0, 0, 0), vr = kr;
      if (t < pos) {
        const __half* src = skv + (t * 2) * kHbHeadDim + j8 * 8;
        kr = *reinterpret_cast<const uint4*>(src);
        vr = *reinterpret_cast<const uint4*>(src + kHbHeadDim);
      }
      unpack8(kr, kf);
      unpack8(vr, vf);
    }
    float dot = 0.f;
#pragma unroll
    for (int x = 0; x < 8; ++x) dot = fmaf(qf[x], kf[x], dot);
    dot += __shfl_xor_sync(0xffffffffu, dot, 1);
    dot += __shfl_xor_sync(0xffffffffu, dot, 2);
    dot += __shfl_xor_sync(0xffffffffu, dot, 4);
    if (t > pos) continue;
    const float s = dot * scale, mn = fmaxf(m, s);
    const float c = exp2f(m - mn), pr = exp2f(s - mn);
    l = l * c + pr;
#pragma unroll
    for (int x = 0; x < 8; ++x) o[x] = fmaf(pr, vf[x], o[x] * c);
    m = mn;
  }
#pragma unroll
  for (int off = 8; off < 32; off <<= 1) {
    float o2[8];
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), l2 = __shfl_xor_sync(0xffffffffu, l, off);
#pragma unroll
    for (int x = 0; x < 8; ++x) o2[x] = __shfl_xor_sync(0xffffffffu, o[x], off);
    mergeSoftmax(m, l, o, m2, l2, o2, 8);
  }
  if (lane < 8) {
    if (lane == 0) sh.warpM[warp] = m, sh.warpL[warp] = l;
#pragma unroll
    for (int x = 0; x < 8; ++x) sh.warpO[warp][lane * 8 + x] = o[x];
  }
  __syncthreads();
  if (tid < kHbHeadDim) {
    float hm = -FLT_MAX, hl = 0.f, ho = 0.f;
    for (int w = 0; w < kHbWarps; ++w) mergeSoftmax(hm, hl, &ho, sh.warpM[w], sh.warpL[w], &sh.warpO[w][tid], 1);
    sh.o[tid] = roundHalf(ho / hl);  // hl > 0: the new key is always there
  }
  __syncthreads();
  if (tid < kHbHeadDim / 8) sh.oq[(tid & 3) * 2 + (tid >> 2)] = packInt4Order(sh.o + tid * 8);
  __syncthreads();

  // attn.c_proj for this head's inputs: fp32 partials, no bias (added by the consumers).
#pragma unroll
  for (int v = 0; v < kHbProjPasses; ++v) {
    const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(pZero[v]));
    float a = dotInt4Chunk(wp[v], zz, sh.oq, 2, projSub) * __half2float(pScale[v]);
    a += __shfl_xor_sync(0xffffffffu, a, 1);
    const int row = projRow0 + 16 * v + lane / 2;
    if (projSub == 0) {
      if (ab.accumulate)
        atomicAdd(ab.headPartials + row, a);
      else
        ab.headPartials[static_cast<int64_t>(head) * kHbEmbd + row] = a;
    }
  }
}

template <int kIn>
WbStatus launchHead(const WbDecodeAttentionBlockParams& ab, cudaStream_t stream) {
  const size_t smem = headDynamicBytes(ab.qkv.capacity);
  auto kernel = headBlockKernel<kIn>;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) != cudaSuccess)
    return checkLaunch("decode head block: cudaFuncSetAttribute");
  return launchDecodeKernel(reinterpret_cast<const void*>(kernel), dim3(ab.qkv.heads), dim3(kHbThreads), smem,
                            ab.qkv.programmaticLaunch != 0, ab.qkv.sharedCarveout, stream, "decode head block launch",
                            const_cast<WbDecodeAttentionBlockParams*>(&ab));
}

}  // namespace

WbStatus launchHeadBlock(const WbDecodeAttentionBlockParams& ab, cudaStream_t stream) {
  const WbDecodeLinearParams& p = ab.qkv;
  if (!p.weight.qweight || !wbDecodeHeadBlockSupported(p.k, p.capacity, p.weight.groupSize) ||
      ab.proj.groupSize != kMmaStepInputs)
    return fail(WB_STATUS_UNSUPPORTED, "decode head block: needs int4 groups of %d, E = %d and a cache whose tiles "
                "fit in shared memory (got E %d, groups %d and %d, capacity %d)", kMmaStepInputs, kHbEmbd, p.k,
                p.weight.groupSize, ab.proj.groupSize, p.capacity);
  if (reinterpret_cast<uintptr_t>(p.weight.scales) % 16)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode head block: c_attn's scales must be 16-byte aligned");
  switch (p.input) {
    case WB_DECODE_IN_EMBED: return launchHead<WB_DECODE_IN_EMBED>(ab, stream);
    case WB_DECODE_IN_HEADS: return launchHead<WB_DECODE_IN_HEADS>(ab, stream);
    default: return launchHead<WB_DECODE_IN_LAYERNORM>(ab, stream);
  }
}

}  // namespace wbk

extern "C" int wbDecodeHeadBlockSupported(int embd, int capacity, int groupSize) {
  using namespace wbk;
  if (embd != kHbEmbd || groupSize != kMmaStepInputs || capacity < 1) return 0;
  int dev = 0, major = 0, optin = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return major >= 9 && headDynamicBytes(capacity) + sizeof(HeadShared) <= static_cast<size_t>(optin);
}
