// Fused batch-1 decode kernels; see decode.h.
// GEMV: 64-256 threads, rows owned by lane groups (32 lanes per fp16 row, 8 or 32 per
// int4 row; int4 in groups of 128 with K a multiple of 1024 on tensor cores instead,
// decode_int4_mma.cuh), 16-byte streaming weight loads; the first pass of each row's weights (and
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
#include "kernels/decode/decode_device.cuh"
#include "kernels/decode/decode_int4_mma.cuh"
#include "kernels/decode/decode_launch.h"
#include "kernels/decode/decode_lm_head_tiles.cuh"

namespace wbk {
namespace {

// Warps per GEMV block: enough for one block per SM to hold the rows, at most
// kMaxWarps (kMaxWarpsLong for rows of more than 4 chunks a lane, which hold 16 chunks
// a lane in registers). Measured on H100 (docs/PERF.md, "Block shape, carveout and
// one-pass LayerNorm"): one block per SM of up to 12 warps beat two per SM of up to 8
// (124M fp16 207.6 vs 216.8 us/token, int4 169.7 vs 183.0): fewer blocks to launch,
// finish and synchronise.
constexpr int kMaxWarps = 12, kMaxWarpsLong = 8;
constexpr int kArgmaxWarps = 8;  // the LM head: a resident grid of 4 blocks per SM

template <bool kInt4, int kLanesPerRow>
struct RowLayout {
  static constexpr int kLanes = kLanesPerRow;  // lanes sharing one output row (8 or 32)
  static constexpr int kRowsPerWarp = 32 / kLanes;
  static constexpr int kInputsPerChunk = kInt4 ? 32 : 8;  // inputs behind one 16-byte load
};

template <int kIn, int kOut, bool kInt4, int kLanesPerRow, int kVmax>
__global__ void __launch_bounds__((kVmax == 4 ? kMaxWarps : kMaxWarpsLong) * 32) decodeLinearKernel(const WbDecodeLinearParams p) {
  using L = RowLayout<kInt4, kLanesPerRow>;
  constexpr bool kNorm = kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_EMBED || kIn == WB_DECODE_IN_HEADS;
  extern __shared__ float4 smem[];
  const StagedInput staged(smem, p.k, kInt4);
  __shared__ float scratch[2 * kMaxWarps];  // stageInput: up to two floats a warp
  __shared__ float bestValue[kMaxWarps];
  __shared__ int bestIndex[kMaxWarps];
  __shared__ bool lastBlock;

  const int k = p.k, n = p.n;
  const int rowChunks = k / L::kInputsPerChunk;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int sub = lane % L::kLanes;
  const int warps = blockDim.x >> 5;
  const int rowsPerBlock = warps * L::kRowsPerWarp;
  const int groups = kInt4 ? k / p.weight.groupSize : 1;
  const int chunksPerGroup = kInt4 ? p.weight.groupSize / 32 : 1;
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
          w[v] = __ldcs(
              reinterpret_cast<const uint4*>(p.weight.qweight + static_cast<int64_t>(row) * (k / 2)) + c);
          const int64_t g = static_cast<int64_t>(row) * groups + c / chunksPerGroup;
          scale[v] = static_cast<const __half*>(p.weight.scales)[g];
          zero[v] = p.weight.zeros ? p.weight.zeros[g] : 8;
        } else {
          w[v] = __ldcs(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.weight.weight) +
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
  if (kNorm) stageLayerNormParams(p, staged.sln);
  // A folded LayerNorm (fp16 LAYERNORM or EMBED input): the row's scale and shift replace the bias.
  const bool folded = (kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_EMBED) && !kInt4 && p.lnFolded;
  float bias0 = 0.f, residual0 = 0.f, rowScale0 = 0.f;
  if (sub == 0 && myRow0 < n) {
    if (folded) {
      bias0 = p.lnRowShift[myRow0];
      rowScale0 = p.lnRowScale[myRow0];
    } else if (p.weight.bias) {
      bias0 = __half2float(static_cast<const __half*>(p.weight.bias)[myRow0]);
    }
    residual0 = residualBeforeWait<kOut>(p, myRow0);
  }
  // The position was last advanced by the previous step's argmax, long finished when
  // the combine of this step's attention may start.
  const int64_t attnPos = kIn == WB_DECODE_IN_ATTENTION ? __ldcg(p.position) : -1;
  waitForPrevious();
  releaseDependents();
  const int64_t stepPos = kOut == WB_DECODE_OUT_QKV ? __ldcg(p.position) : 0;  // written by the previous step
  float mean = 0.f, rstd = 1.f;
  if (folded) {
    stageLayerNormFolded<kIn>(p, staged.sx, staged.sln, scratch);
    foldedStats(p, scratch, mean, rstd);
  } else {
    stageInput<kIn, kInt4, true, kHeadsSums<kIn, kOut>>(p, staged.sx, staged.sxq, staged.sln, scratch, attnPos);
  }

  float best = -FLT_MAX;
  int bestIdx = 0x7fffffff;
  const int passChunks = kVmax * L::kLanes;
  bool loaded = true;
  for (; warpRow < n; warpRow += gridDim.x * rowsPerBlock) {
    const int row = warpRow + lane / L::kLanes;
    // The row's bias (or folded scale and shift), issued beside its weights, not after its products.
    const bool first = row == myRow0;
    float b = bias0, rowScale = rowScale0;
    if (!first && sub == 0 && row < n) {
      if (folded) {
        b = p.lnRowShift[row];
        rowScale = p.lnRowScale[row];
      } else {
        b = p.weight.bias ? __half2float(static_cast<const __half*>(p.weight.bias)[row]) : 0.f;
      }
    }
    // Four independent chains of FMAs, not one: a lane's products for K = 3072 would be a
    // 96-deep dependent chain on the critical path (docs/PERF.md, session 12).
    float accs[4] = {0.f, 0.f, 0.f, 0.f};
    for (int base = 0; base < rowChunks; base += passChunks) {
      if (!loaded) load(row, base);
      loaded = false;
#pragma unroll
      for (int v = 0; v < kVmax; ++v) {
        const int c = base + sub + v * L::kLanes;
        if (c >= rowChunks) continue;
        const int a = v & 3;
        if (kInt4) {
          const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(zero[v]));
          accs[a] = fmaf(dotInt4Chunk(w[v], zz, staged.sxq, k / 32, c), __half2float(scale[v]), accs[a]);
        } else {
          accs[a] = dotFp16Chunk(w[v], staged.sx + c * 8, accs[a]);
        }
      }
    }
    float acc = (accs[0] + accs[1]) + (accs[2] + accs[3]);
#pragma unroll
    for (int o = L::kLanes / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (sub != 0 || row >= n) continue;
    if (folded) acc = rstd * (acc - mean * rowScale);
    storeRow<kOut>(p, row, acc + b, first, residual0, stepPos, best, bestIdx);
  }

  if (kOut == WB_DECODE_OUT_ARGMAX) argmaxFinish(p, best, bestIdx, bestValue, bestIndex, &lastBlock);
}

// One block per (64-key split, head); see attendSplit.
__global__ void __launch_bounds__(128) decodeAttentionKernel(const WbDecodeAttentionParams p) {
  __shared__ SplitShared sh;
  const int64_t pos = __ldcg(p.position);  // see waitForPrevious
  SplitKeys r;
  fetchSplit(p, blockIdx.y, blockIdx.x, pos, threadIdx.x, r);
  waitForPrevious();
  releaseDependents();
  attendSplit(p, blockIdx.y, blockIdx.x, pos, threadIdx.x, r, sh, [] { __syncthreads(); });
}

// A GEMV block's dynamic shared memory: x in fp32 [K], int4 its packed copy [K/8 x 16 B],
// a LayerNorm input its weight and bias [2K fp16].
template <int kIn>
size_t gemvSharedBytes(int k, bool int4) {
  constexpr bool kNorm = kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_EMBED || kIn == WB_DECODE_IN_HEADS;
  return static_cast<size_t>(k) * (sizeof(float) + (int4 ? 2 : 0) + (kNorm ? 4 : 0));
}

// A GEMV kernel's launch: the dynamic shared memory it needs (above the default 48 KB
// only by request), programmatic launch and the step's carveout.
WbStatus launchGemv(const void* kernel, int blocks, int warps, size_t smem, const WbDecodeLinearParams& p,
                    cudaStream_t stream, const char* what) {
  if (smem > 48 * 1024 &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) != cudaSuccess)
    return checkLaunch(what);
  return launchDecodeKernel(kernel, dim3(blocks), dim3(warps * 32), smem, p.programmaticLaunch != 0, p.sharedCarveout,
                            stream, what, const_cast<WbDecodeLinearParams*>(&p));
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
  // One block per SM holds the rows; the argmax GEMV loops over its rows with a resident grid.
  const int sms = smCount();
  const int warpRows = (p.n + L::kRowsPerWarp - 1) / L::kRowsPerWarp;
  const int cap = perLane <= 4 ? kMaxWarps : kMaxWarpsLong;
  int warps = kOut == WB_DECODE_OUT_ARGMAX ? kArgmaxWarps : std::clamp((warpRows + sms - 1) / sms, 2, cap);
  // The attention combine runs one 8-input chunk per thread: enough threads that none
  // takes two in a row (each is an L2 round trip).
  if (kIn == WB_DECODE_IN_ATTENTION) warps = std::max(warps, std::min(cap, (p.k / 8 + 31) / 32));
  int blocks = (warpRows + warps - 1) / warps;
  if (kOut == WB_DECODE_OUT_ARGMAX) blocks = std::min(std::min(blocks, 4 * sms), p.argmaxSlots);
  const size_t smem = gemvSharedBytes<kIn>(p.k, kInt4);
  auto kernel = perLane <= 4 ? decodeLinearKernel<kIn, kOut, kInt4, kLanesPerRow, 4>
                             : decodeLinearKernel<kIn, kOut, kInt4, kLanesPerRow, 16>;
  return launchGemv(reinterpret_cast<const void*>(kernel), blocks, warps, smem, p, stream, "decode linear launch");
}

// The tensor-core int4 GEMV (decode_int4_mma.cuh) for K a multiple of 1024 (segments of
// whole groups): K = 1024 two tiles of two rows a warp, 2048 one tile of two, 3072 and
// 4096 one row; warps and blocks as launchLinear, but the LM head's grid is what is
// resident at once (occupancy), not 4 blocks an SM.
template <int kIn, int kOut, int kRows, int kTiles, int kJ>
WbStatus launchLinearMmaShape(const WbDecodeLinearParams& p, cudaStream_t stream) {
  const int sms = smCount();
  const int warpRows = (p.n + kRows * kTiles - 1) / (kRows * kTiles);
  const int warps = kOut == WB_DECODE_OUT_ARGMAX ? kArgmaxWarps : std::clamp((warpRows + sms - 1) / sms, 2, kMmaMaxWarps);
  int blocks = (warpRows + warps - 1) / warps;
  const size_t smem = gemvSharedBytes<kIn>(p.k, true);
  const void* kernel = reinterpret_cast<const void*>(decodeLinearMmaKernel<kIn, kOut, kRows, kTiles, kJ>);
  if (kOut == WB_DECODE_OUT_ARGMAX) {  // the LM head: the blocks that are resident at once, looping over the rows
    int resident = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, warps * 32, smem) != cudaSuccess)
      return checkLaunch("decode linear (tensor cores): occupancy");
    blocks = std::min(std::min(blocks, std::max(resident, 1) * sms), p.argmaxSlots);
  }
  return launchGemv(kernel, blocks, warps, smem, p, stream, "decode linear (tensor cores) launch");
}
// Launches it where K fits (status: the launch's); false where it does not apply.
template <int kIn, int kOut>
bool launchLinearMma(const WbDecodeLinearParams& p, cudaStream_t stream, WbStatus& status) {
  if (p.k % 1024 != 0) return false;
  switch (p.k / 1024) {
    case 1: status = launchLinearMmaShape<kIn, kOut, 2, 2, 1>(p, stream); return true;
    case 2: status = launchLinearMmaShape<kIn, kOut, 2, 1, 2>(p, stream); return true;
    case 3: status = launchLinearMmaShape<kIn, kOut, 1, 1, 3>(p, stream); return true;
    case 4: status = launchLinearMmaShape<kIn, kOut, 1, 1, 4>(p, stream); return true;
    default: return false;
  }
}

// The row-tile LM head (decode_lm_head_tiles.cuh): blocks of 8 warps, as many an SM as
// rowTiles.blocksPerSm asks (3 by default) and occupancy allows, at most one a tile's warp.
template <int kIn, int kChunks>
WbStatus launchLmHeadTiles(const WbDecodeLinearParams& p, cudaStream_t stream) {
  constexpr int kPass = 4;
  const void* kernel = reinterpret_cast<const void*>(decodeLmHeadTilesKernel<kIn, kChunks, kPass>);
  const size_t smem = gemvSharedBytes<kIn>(p.k, true);
  int resident = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, kTileWarps * 32, smem) != cudaSuccess)
    return checkLaunch("decode LM head (row tiles): occupancy");
  const int perSm = std::max(1, std::min(resident, p.rowTiles.blocksPerSm > 0 ? p.rowTiles.blocksPerSm : 3));
  const int tiles = (p.n + 15) / 16;
  const int blocks = std::min(std::min((tiles + kTileWarps - 1) / kTileWarps, perSm * smCount()), p.argmaxSlots);
  return launchGemv(kernel, blocks, kTileWarps, smem, p, stream, "decode LM head (row tiles) launch");
}
template <int kIn>
WbStatus launchLmHeadTilesFor(const WbDecodeLinearParams& p, cudaStream_t stream) {
  switch (p.k / 64) {
    case 12: return launchLmHeadTiles<kIn, 12>(p, stream);
    case 16: return launchLmHeadTiles<kIn, 16>(p, stream);
    default: return launchLmHeadTiles<kIn, 20>(p, stream);  // checkLinear admits 12, 16 and 20 only
  }
}

// fp16 rows: a warp per row. int4 rows (4x shorter): eight lanes per row while that
// leaves each lane <= 4 chunks, else a warp, so that no lane dequantizes a long serial
// run of chunks (that, not memory, bounded the int4 GEMVs with few warps per SM).
template <int kIn, int kOut>
WbStatus launchFormat(const WbDecodeLinearParams& p, cudaStream_t stream) {
  if constexpr (kOut == WB_DECODE_OUT_ARGMAX && (kIn == WB_DECODE_IN_LAYERNORM || kIn == WB_DECODE_IN_HEADS)) {
    if (p.rowTiles.codes) return launchLmHeadTilesFor<kIn>(p, stream);
  }
  if (!p.weight.qweight) return launchLinear<kIn, kOut, false, 32>(p, stream);
  WbStatus status = WB_STATUS_OK;
  if (p.int4Mma && p.weight.groupSize == kMmaStepInputs && launchLinearMma<kIn, kOut>(p, stream, status))
    return status;
  return p.k / 32 <= 32 ? launchLinear<kIn, kOut, true, 8>(p, stream) : launchLinear<kIn, kOut, true, 32>(p, stream);
}

WbStatus checkLinear(const WbDecodeLinearParams* params) {
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: params is NULL");
  const WbDecodeLinearParams& p = *params;
  if (p.n <= 0 || p.k <= 0 || p.k % 32 != 0)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: N = %d, K = %d (K must be a positive multiple of 32)", p.n,
                p.k);
  const int gs = p.weight.groupSize;
  if (p.rowTiles.codes) {
    const int chunks = p.k / 64;
    if (p.output != WB_DECODE_OUT_ARGMAX || (p.input != WB_DECODE_IN_LAYERNORM && p.input != WB_DECODE_IN_HEADS) ||
        gs != 128 || p.k % 128 != 0 || (chunks != 12 && chunks != 16 && chunks != 20) || !p.rowTiles.scales ||
        reinterpret_cast<uintptr_t>(p.rowTiles.codes) % 16 || p.rowTiles.blocksPerSm < 0 || p.rowTiles.blocksPerSm > 3)
      return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: row tiles are an LM head's (ARGMAX after a LayerNorm or "
                  "heads input), groups of 128, K of 768, 1024 or 1280, scales given, codes 16-byte aligned, "
                  "blocksPerSm 0..3 (got output %d, group %d, K %d, blocksPerSm %d)", static_cast<int>(p.output), gs,
                  p.k, p.rowTiles.blocksPerSm);
  } else {
    if ((p.weight.weight == nullptr) == (p.weight.qweight == nullptr))
      return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: give exactly one of weight (fp16) and qweight (int4)");
    if (p.weight.qweight && (!p.weight.scales || (gs != 32 && gs != 64 && gs != 128) || p.k % gs != 0))
      return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: int4 needs scales and a group size of 32, 64 or 128 dividing K");
  }
  if (p.sharedCarveout < 0 || p.sharedCarveout > 100)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: sharedCarveout %d is not 0 (no request) or 1..100 percent",
                p.sharedCarveout);
  const void* w = p.weight.weight    ? p.weight.weight
                  : p.weight.qweight ? static_cast<const void*>(p.weight.qweight)
                                     : static_cast<const void*>(p.rowTiles.codes);
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
    case WB_DECODE_IN_HEADS:
      if (!p.x || reinterpret_cast<uintptr_t>(p.x) % 16 || !p.lnWeight || !p.lnBias ||
          reinterpret_cast<uintptr_t>(p.lnWeight) % 16 || reinterpret_cast<uintptr_t>(p.lnBias) % 16 ||
          !p.headPartials || reinterpret_cast<uintptr_t>(p.headPartials) % 16 || !p.headBias ||
          reinterpret_cast<uintptr_t>(p.headBias) % 16 || p.headCount < 1)
        return fail(WB_STATUS_INVALID_ARGUMENT,
                    "decode linear: heads input needs x, LayerNorm, head partials, head bias (16-byte aligned) and headCount");
      break;
    default: return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: unknown input %d", static_cast<int>(p.input));
  }
  if (p.lnFolded && ((p.input != WB_DECODE_IN_LAYERNORM && p.input != WB_DECODE_IN_EMBED) || !p.weight.weight ||
                     !p.lnRowScale || !p.lnRowShift))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: a folded LayerNorm needs a LAYERNORM or EMBED input, fp16 "
                                            "weights, lnRowScale and lnRowShift");
  if (p.headPartials && p.input != WB_DECODE_IN_HEADS &&
      (p.output != WB_DECODE_OUT_RESIDUAL || !p.headBias || p.headCount < 1))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: head partials go with a heads input or a residual output "
                                            "(with headBias and headCount)");
  if (p.headClear && (!p.headPartials || p.output != WB_DECODE_OUT_RESIDUAL))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: headClear needs head partials and a residual output");
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
      if (p.input == WB_DECODE_IN_HEADS &&
          (p.headCount != WB_DECODE_MLP_SUMS || p.lnTwoPass || p.k > kLnChunks * kArgmaxWarps * 32 * 8))
        return fail(WB_STATUS_INVALID_ARGUMENT, "decode linear: a heads input to the argmax is an MLP block's sum "
                    "(headCount %d, one-pass LayerNorm, K <= %d; got headCount %d, K %d)", WB_DECODE_MLP_SUMS,
                    kLnChunks * kArgmaxWarps * 32 * 8, p.headCount, p.k);
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
  if (p.input == WB_DECODE_IN_HEADS && p.output == WB_DECODE_OUT_GELU)
    return launchFormat<WB_DECODE_IN_HEADS, WB_DECODE_OUT_GELU>(p, stream);
  if (p.input == WB_DECODE_IN_LAYERNORM && p.output == WB_DECODE_OUT_GELU)
    return launchFormat<WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_GELU>(p, stream);
  if (p.input == WB_DECODE_IN_PLAIN && p.output == WB_DECODE_OUT_RESIDUAL)
    return launchFormat<WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL>(p, stream);
  if (p.input == WB_DECODE_IN_LAYERNORM && p.output == WB_DECODE_OUT_ARGMAX)
    return launchFormat<WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_ARGMAX>(p, stream);
  if (p.input == WB_DECODE_IN_HEADS && p.output == WB_DECODE_OUT_ARGMAX)  // ln_f after an MLP block
    return launchFormat<WB_DECODE_IN_HEADS, WB_DECODE_OUT_ARGMAX>(p, stream);
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
  if (p.sharedCarveout < 0 || p.sharedCarveout > 100)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention: sharedCarveout %d is not 0 (no request) or 1..100 percent",
                p.sharedCarveout);
  if (!p.q || !p.kCache || !p.vCache || !p.position || !p.partO || !p.partMl || p.heads < 1 || p.capacity < 1)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention: a pointer is NULL or a size is not positive");
  if (reinterpret_cast<uintptr_t>(p.q) % 16 || reinterpret_cast<uintptr_t>(p.kCache) % 16 ||
      reinterpret_cast<uintptr_t>(p.vCache) % 16)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention: q and the caches must be 16-byte aligned");
  const dim3 grid(wbDecodeAttentionSplits(p.capacity), p.heads);
  return launchDecodeKernel(reinterpret_cast<const void*>(decodeAttentionKernel), grid, dim3(128), 0,
                            p.programmaticLaunch != 0, p.sharedCarveout, stream, "decode attention launch",
                            const_cast<WbDecodeAttentionParams*>(&p));
}
