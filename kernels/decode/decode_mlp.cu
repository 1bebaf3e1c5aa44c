// The fused decode MLP; see decode_mlp.h.
// Block: C/2 threads. Phase 1 (a warp per hidden unit, round-robin): the unit's c_fc
// row against the staged LayerNorm input, + bias, rounded to fp16, tanh-GELU, rounded
// again (as decode.cu's GELU epilogue). Phase 2: thread t owns 8 output columns
// (chunk t % (C/8)) for a quarter of the block's hidden units; the four quarters meet in
// shared memory and one thread per chunk adds 8 sums to the delta with two float4
// atomics (sm_90). Everything a block reads from global memory before the wait is
// constant weights.
#include <cuda_fp16.h>

#include "kernels/common/mma_sm80.cuh"
#include "kernels/common/status_internal.h"
#include "kernels/decode/decode_device.cuh"
#include "kernels/decode/decode_launch.h"
#include "kernels/decode/decode_mlp.h"

namespace wbk {
namespace {

constexpr int kQuarters = 4;  // hidden-unit subsets per output chunk in phase 2

// Byte offsets of the block's shared arrays; each one 16-byte aligned.
struct MlpSmem {
  int sx, sxq, sln, fcBias, hidden, fc, fcScales, fcZeros, proj, projScales, projZeros, red, total;
  __host__ __device__ MlpSmem(int c, int rows, bool int4, int fcGroup) {
    auto up = [](int v) { return (v + 15) / 16 * 16; };
    int o = 0;
    auto take = [&](int bytes) { const int at = o; o += up(bytes); return at; };
    sx = take(c * 4);
    sxq = take(int4 ? c * 2 : 0);
    sln = take(c * 4);
    fcBias = take(rows * 4);
    hidden = take(rows * 4);
    fc = take(int4 ? rows * c / 2 : rows * c * 2);
    fcScales = take(int4 ? rows * (c / fcGroup) * 2 : 0);
    fcZeros = take(int4 ? rows * (c / fcGroup) : 0);
    proj = take(int4 ? rows * c / 2 : rows * c * 2);
    projScales = take(int4 ? c * 2 : 0);
    projZeros = take(int4 ? c : 0);
    red = take((kQuarters - 1) * c * 4);
    total = o;
  }
};

// `bytes` (a multiple of 16) from global to shared memory through cp.async.
__device__ __forceinline__ void copyAsync(void* dst, const void* src, int bytes) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  for (int i = threadIdx.x * 16; i < bytes; i += blockDim.x * 16) cpAsync16(smemAddr(d + i), s + i, true);
}

template <bool kInt4, int kRows>
__global__ void __launch_bounds__(1024) decodeMlpKernel(const WbDecodeMlpParams p) {
  extern __shared__ float4 smemRaw[];
  char* smem = reinterpret_cast<char*>(smemRaw);
  __shared__ float scratch[32];
  const int c = p.embd, chunks = c / 8;
  const int fcGroup = kInt4 ? p.fc.groupSize : 1;
  const MlpSmem L(c, kRows, kInt4, fcGroup);
  float* sx = reinterpret_cast<float*>(smem + L.sx);
  uint4* sxq = reinterpret_cast<uint4*>(smem + L.sxq);
  __half* sln = reinterpret_cast<__half*>(smem + L.sln);
  float* fcBias = reinterpret_cast<float*>(smem + L.fcBias);
  float* hidden = reinterpret_cast<float*>(smem + L.hidden);
  float* red = reinterpret_cast<float*>(smem + L.red);
  const int j0 = blockIdx.x * kRows;

  // Constant weights first: they overlap the previous kernel under programmatic launch.
  if constexpr (kInt4) {
    const int groups = c / fcGroup;
    copyAsync(smem + L.fc, p.fc.qweight + static_cast<int64_t>(j0) * (c / 2), kRows * c / 2);
    copyAsync(smem + L.fcScales, static_cast<const __half*>(p.fc.scales) + static_cast<int64_t>(j0) * groups,
              kRows * groups * 2);
    if (p.fc.zeros) copyAsync(smem + L.fcZeros, p.fc.zeros + static_cast<int64_t>(j0) * groups, kRows * groups);
    const int64_t g = j0 / p.projGroupSize;
    copyAsync(smem + L.proj, p.qProj + static_cast<int64_t>(j0) * (c / 2), kRows * c / 2);
    copyAsync(smem + L.projScales, static_cast<const __half*>(p.projScales) + g * c, c * 2);
    if (p.projZeros) copyAsync(smem + L.projZeros, p.projZeros + g * c, c);
  } else {
    copyAsync(smem + L.fc, static_cast<const __half*>(p.fc.weight) + static_cast<int64_t>(j0) * c, kRows * c * 2);
    copyAsync(smem + L.proj, static_cast<const __half*>(p.proj) + static_cast<int64_t>(j0) * c, kRows * c * 2);
  }
  cpAsyncCommit();
  prefetchL2(p.prefetch);
  for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
    reinterpret_cast<uint4*>(sln)[i] = __ldg(reinterpret_cast<const uint4*>(p.lnWeight) + i);
    reinterpret_cast<uint4*>(sln + c)[i] = __ldg(reinterpret_cast<const uint4*>(p.lnBias) + i);
  }
  for (int r = threadIdx.x; r < kRows; r += blockDim.x)
    fcBias[r] = p.fc.bias ? __half2float(static_cast<const __half*>(p.fc.bias)[j0 + r]) : 0.f;

  waitForPrevious();
  releaseDependents();
  WbDecodeLinearParams in{};
  in.k = c;
  in.x = p.x;
  in.lnEps = p.lnEps;
  stageInput<WB_DECODE_IN_LAYERNORM, kInt4>(in, sx, sxq, sln, scratch);
  cpAsyncWait<0>();
  __syncthreads();

  // Phase 1: the block's hidden units.
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  for (int r = warp; r < kRows; r += warps) {
    float acc = 0.f;
    if constexpr (kInt4) {
      const int rowChunks = c / 32, groups = c / fcGroup, perGroup = fcGroup / 32;
      const uint4* w = reinterpret_cast<const uint4*>(smem + L.fc) + r * rowChunks;
      const __half* scales = reinterpret_cast<const __half*>(smem + L.fcScales) + r * groups;
      const uint8_t* zeros = reinterpret_cast<const uint8_t*>(smem + L.fcZeros) + r * groups;
      for (int ch = lane; ch < rowChunks; ch += 32) {
        const int g = ch / perGroup;
        const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(p.fc.zeros ? zeros[g] : 8));
        acc = fmaf(dotInt4Chunk(w[ch], zz, sxq, rowChunks, ch), __half2float(scales[g]), acc);
      }
    } else {
      const uint4* w = reinterpret_cast<const uint4*>(smem + L.fc) + r * chunks;
      for (int ch = lane; ch < chunks; ch += 32) acc = dotFp16Chunk(w[ch], sx + ch * 8, acc);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) hidden[r] = roundHalf(geluTanh(roundHalf(acc + fcBias[r])));
  }
  __syncthreads();

  // Phase 2: 8 output columns x a quarter of the hidden units per thread.
  const int ch = threadIdx.x % chunks, quarter = threadIdx.x / chunks;
  float acc[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) acc[i] = 0.f;
  if constexpr (kInt4) {
    const uint32_t* q = reinterpret_cast<const uint32_t*>(smem + L.proj);
    float hsum = 0.f;
    for (int r = quarter; r < kRows; r += kQuarters) {
      const uint32_t codes = q[r * chunks + ch];  // byte b: columns 2b (low), 2b + 1 (high)
      const float h = hidden[r];
      hsum += h;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] = fmaf(h, static_cast<float>((codes >> (4 * i)) & 0xF), acc[i]);
    }
    const __half* scales = reinterpret_cast<const __half*>(smem + L.projScales) + ch * 8;
    const uint8_t* zeros = reinterpret_cast<const uint8_t*>(smem + L.projZeros) + ch * 8;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      acc[i] = __half2float(scales[i]) * (acc[i] - static_cast<float>(p.projZeros ? zeros[i] : 8) * hsum);
  } else {
    const uint4* w = reinterpret_cast<const uint4*>(smem + L.proj);
    for (int r = quarter; r < kRows; r += kQuarters) {
      const uint4 v = w[r * chunks + ch];
      const uint32_t* wa = reinterpret_cast<const uint32_t*>(&v);
      const float h = hidden[r];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __half22float2(asHalf2(wa[e]));
        acc[2 * e] = fmaf(h, f.x, acc[2 * e]);
        acc[2 * e + 1] = fmaf(h, f.y, acc[2 * e + 1]);
      }
    }
  }
  if (quarter > 0) {
#pragma unroll
    for (int i = 0; i < 8; ++i) red[(quarter - 1) * c + ch * 8 + i] = acc[i];
  }
  __syncthreads();
  if (quarter == 0) {
    for (int s = 0; s < kQuarters - 1; ++s)
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] += red[s * c + ch * 8 + i];
    float4* d = reinterpret_cast<float4*>(p.delta + ch * 8);
    atomicAdd(d, make_float4(acc[0], acc[1], acc[2], acc[3]));
    atomicAdd(d + 1, make_float4(acc[4], acc[5], acc[6], acc[7]));
  }
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

template <bool kInt4, int kRows>
WbStatus launchMlp(const WbDecodeMlpParams& p, cudaStream_t stream) {
  const MlpSmem L(p.embd, kRows, kInt4, kInt4 ? p.fc.groupSize : 1);
  auto kernel = decodeMlpKernel<kInt4, kRows>;
  if (L.total > 48 * 1024 &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L.total) != cudaSuccess)
    return checkLaunch("decode mlp: cudaFuncSetAttribute");
  // Its blocks need far more shared memory than the default split gives: always the largest.
  return launchDecodeKernel(reinterpret_cast<const void*>(kernel), dim3(p.inner / kRows), dim3(p.embd / 2), L.total,
                            p.programmaticLaunch != 0, true, stream, "decode mlp launch",
                            const_cast<WbDecodeMlpParams*>(&p));
}

WbStatus checkMlp(const WbDecodeMlpParams& p) {
  const int c = p.embd, h = p.inner, rows = p.rowsPerBlock;
  if (c <= 0 || c % 64 || c > 2048 || h <= 0 || (rows != 16 && rows != 32) || h % rows)
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "decode mlp: embd %d (a multiple of 64 up to 2048), inner %d, rowsPerBlock %d (16 or 32, dividing inner)",
                c, h, rows);
  if (!p.x || !p.lnWeight || !p.lnBias || !p.delta || !aligned16(p.x) || !aligned16(p.lnWeight) ||
      !aligned16(p.lnBias) || !aligned16(p.delta))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode mlp: x, LayerNorm weight and bias and delta must be 16-byte aligned");
  const bool int4 = p.fc.qweight != nullptr;
  if (int4 == (p.fc.weight != nullptr) || int4 == (p.qProj == nullptr) || int4 == (p.proj != nullptr))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode mlp: c_fc and c_proj both fp16 (weight, proj) or both int4");
  if (!int4) {
    if (!aligned16(p.fc.weight) || !aligned16(p.proj))
      return fail(WB_STATUS_INVALID_ARGUMENT, "decode mlp: weights must be 16-byte aligned");
    return WB_STATUS_OK;
  }
  const int g = p.fc.groupSize, pg = p.projGroupSize;
  if ((g != 32 && g != 64 && g != 128) || c % g || !p.fc.scales || (pg != 32 && pg != 64 && pg != 128) ||
      pg % rows || h % pg || !p.projScales)
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "decode mlp: int4 group sizes %d (c_fc) and %d (c_proj) must be 32, 64 or 128, divide their inputs, "
                "and c_proj's be a multiple of rowsPerBlock",
                g, pg);
  // Every slice a block copies must start and end on 16 bytes.
  if (!aligned16(p.fc.qweight) || !aligned16(p.fc.scales) || !aligned16(p.qProj) || !aligned16(p.projScales) ||
      (p.fc.zeros && !aligned16(p.fc.zeros)) || (p.projZeros && !aligned16(p.projZeros)) ||
      (rows * (c / g)) % 16 || c % 16)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode mlp: int4 arrays must be 16-byte aligned (and embd / group * rows a multiple of 16)");
  return WB_STATUS_OK;
}

}  // namespace
}  // namespace wbk

extern "C" WbStatus wbDecodeMlp(const WbDecodeMlpParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "decode mlp: params is NULL");
  const WbDecodeMlpParams& p = *params;
  if (WbStatus s = checkMlp(p); s != WB_STATUS_OK) return s;
  const bool int4 = p.fc.qweight != nullptr;
  if (int4) return p.rowsPerBlock == 16 ? launchMlp<true, 16>(p, stream) : launchMlp<true, 32>(p, stream);
  return p.rowsPerBlock == 16 ? launchMlp<false, 16>(p, stream) : launchMlp<false, 32>(p, stream);
}
