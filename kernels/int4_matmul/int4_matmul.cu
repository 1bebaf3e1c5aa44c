// int4 weight-only matmul kernels; see int4_matmul.h.
// GEMV: x (M <= 8 rows) is staged once per block in shared memory as fp16 in the order
// the nibble trick produces ((x0,x4),(x1,x5),...), each warp owns one output row and
// reads its packed weights in 16-byte streaming loads; codes become half2 through
// (w & 0x000F000F) | 0x64006400 = 1024 + code, products are summed in half2 for 8
// values, then in fp32 and scaled per group. GEMM: 64x64 output tiles, the weight tile
// dequantized into shared memory, mma.sync with fp32 accumulators.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/common/convert.cuh"
#include "kernels/common/mma_sm80.cuh"
#include "kernels/common/status_internal.h"
#include "kernels/int4_matmul/int4_matmul.h"

namespace wbk {
namespace {

constexpr int kGemvWarps = 8;

__device__ __forceinline__ uint32_t lop3Nibbles(uint32_t w) {
  uint32_t out;
  // (w & 0x000F000F) | 0x64006400: two fp16 values 1024 + nibble.
  asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(out) : "r"(w), "r"(0x000F000Fu), "r"(0x64006400u));
  return out;
}

__device__ __forceinline__ __half2 asHalf2(uint32_t v) { return *reinterpret_cast<__half2*>(&v); }
__device__ __forceinline__ uint32_t asU32(__half2 v) { return *reinterpret_cast<uint32_t*>(&v); }

using wbk::fromFloat;
using wbk::toFloat;

// Shared x layout for the GEMV: row m, 16-byte chunk kc = 4 c + e (c = 32-input chunk,
// e = word) lives at m * K/8 + e * K/32 + c, so the 32 lanes of a warp (consecutive c)
// read consecutive 16-byte slots.
template <typename T, int M, bool kAsym>
__global__ void __launch_bounds__(kGemvWarps * 32) int4GemvKernel(const WbInt4MatmulParams p) {
  extern __shared__ uint4 sx[];
  const int k = p.k;
  const int chunks8 = k / 8, chunks32 = k / 32;
  for (int c = threadIdx.x; c < M * chunks8; c += blockDim.x) {
    const int m = c / chunks8, kc = c % chunks8;
    const uint4 raw = *reinterpret_cast<const uint4*>(static_cast<const T*>(p.x) + m * p.xStride + kc * 8);
    const uint32_t* r = reinterpret_cast<const uint32_t*>(&raw);
    float f[8];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 v = unpack2<T>(r[e]);
      f[2 * e] = fminf(fmaxf(v.x, -65504.f), 65504.f);
      f[2 * e + 1] = fminf(fmaxf(v.y, -65504.f), 65504.f);
    }
    uint4 out;
    out.x = asU32(__floats2half2_rn(f[0], f[4]));
    out.y = asU32(__floats2half2_rn(f[1], f[5]));
    out.z = asU32(__floats2half2_rn(f[2], f[6]));
    out.w = asU32(__floats2half2_rn(f[3], f[7]));
    sx[m * chunks8 + (kc & 3) * chunks32 + (kc >> 2)] = out;
  }
  __syncthreads();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row = blockIdx.x * kGemvWarps + warp;
  if (row >= p.n) return;
  const int groups = k / p.groupSize;
  const uint4* wrow = reinterpret_cast<const uint4*>(p.qweight + static_cast<int64_t>(row) * (k / 2));
  const __half* srow = static_cast<const __half*>(p.scales) + static_cast<int64_t>(row) * groups;
  const uint8_t* zrow = kAsym ? p.zeros + static_cast<int64_t>(row) * groups : nullptr;
  const int chunksPerGroup = p.groupSize / 32;

  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;

  auto process = [&](const uint4& wv, int c) {
    const int grp = c / chunksPerGroup;
    const float s = __half2float(srow[grp]);
    const __half2 zz = kAsym ? __float2half2_rn(1024.f + static_cast<float>(zrow[grp])) : __float2half2_rn(1032.f);
    const uint32_t* wa = reinterpret_cast<const uint32_t*>(&wv);
    float part[M];
#pragma unroll
    for (int m = 0; m < M; ++m) part[m] = 0.f;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const uint32_t w = wa[e];
      const __half2 h0 = __hsub2(asHalf2(lop3Nibbles(w)), zz);
      const __half2 h1 = __hsub2(asHalf2(lop3Nibbles(w >> 4)), zz);
      const __half2 h2 = __hsub2(asHalf2(lop3Nibbles(w >> 8)), zz);
      const __half2 h3 = __hsub2(asHalf2(lop3Nibbles(w >> 12)), zz);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 xv = sx[m * chunks8 + e * chunks32 + c];
        __half2 a = __hmul2(h0, asHalf2(xv.x));
        a = __hfma2(h1, asHalf2(xv.y), a);
        a = __hfma2(h2, asHalf2(xv.z), a);
        a = __hfma2(h3, asHalf2(xv.w), a);
        const float2 f = __half22float2(a);
        part[m] += f.x + f.y;
      }
    }
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] = fmaf(part[m], s, acc[m]);
  };

  // Two loads in flight per lane before their first use.
  int c = lane;
  for (; c + 32 < chunks32; c += 64) {
    const uint4 w0 = __ldcs(wrow + c);
    const uint4 w1 = __ldcs(wrow + c + 32);
    process(w0, c);
    process(w1, c + 32);
  }
  if (c < chunks32) process(__ldcs(wrow + c), c);

#pragma unroll
  for (int m = 0; m < M; ++m) {
    float v = acc[m];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    acc[m] = v;
  }
  if (lane == 0) {
    const float bias = p.bias ? toFloat(static_cast<const T*>(p.bias)[row]) : 0.f;
#pragma unroll
    for (int m = 0; m < M; ++m) static_cast<T*>(p.y)[m * p.yStride + row] = fromFloat<T>(acc[m] + bias);
  }
}

template <typename T, bool kAsym>
__global__ void __launch_bounds__(128) int4GemmKernel(const WbInt4MatmulParams p) {
  constexpr int BM = 64, BN = 64, BK = 64;
  __shared__ __align__(128) T sX[BM * BK];
  __shared__ __align__(128) T sW[BN * BK];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  const int wm = warp >> 1, wn = warp & 1;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int k = p.k, groups = k / p.groupSize;
  const T* x = static_cast<const T*>(p.x);

  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

  for (int k0 = 0; k0 < k; k0 += BK) {
    for (int c = tid; c < BM * BK / 8; c += 128) {
      const int r = c / (BK / 8), ch = c % (BK / 8);
      const bool valid = m0 + r < p.m && k0 + ch * 8 < k;
      const T* src = valid ? x + (m0 + r) * p.xStride + k0 + ch * 8 : x;
      cpAsync16(smemAddr(sX + swz<BK>(r, ch * 8)), src, valid);
    }
    cpAsyncCommit();
    {
      // One 16-byte chunk (32 inputs of one output row, inside one group) per thread.
      const int r = tid >> 1, part = tid & 1;
      const int n = n0 + r, kk = k0 + part * 32;
      uint4 wv = make_uint4(0, 0, 0, 0);
      float s = 0.f, z = 8.f;
      if (n < p.n && kk < k) {
        wv = __ldg(reinterpret_cast<const uint4*>(p.qweight + static_cast<int64_t>(n) * (k / 2) + kk / 2));
        const int grp = kk / p.groupSize;
        s = __half2float(static_cast<const __half*>(p.scales)[static_cast<int64_t>(n) * groups + grp]);
        if (kAsym) z = static_cast<float>(p.zeros[static_cast<int64_t>(n) * groups + grp]);
      }
      const uint32_t* wa = reinterpret_cast<const uint32_t*>(&wv);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        uint4 out;
        uint32_t* oa = reinterpret_cast<uint32_t*>(&out);
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const float lo = static_cast<float>((wa[e] >> (8 * b)) & 0xF);
          const float hi = static_cast<float>((wa[e] >> (8 * b + 4)) & 0xF);
          oa[b] = pack2<T>((lo - z) * s, (hi - z) * s);
        }
        *reinterpret_cast<uint4*>(sW + swz<BK>(r, part * 32 + e * 8)) = out;
      }
    }
    cpAsyncWait<0>();
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t a[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const int row = wm * 32 + mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = kk * 16 + (lane >> 4) * 8;
        ldmatrixX4(a[mt], smemAddr(sX + swz<BK>(row, col)));
      }
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        uint32_t r[4];
        const int row = wn * 32 + np * 16 + (lane & 7) + (lane >> 4) * 8;
        const int col = kk * 16 + ((lane >> 3) & 1) * 8;
        ldmatrixX4(r, smemAddr(sW + swz<BK>(row, col)));
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          mma16816<T>(acc[mt][2 * np], a[mt], r[0], r[1]);
          mma16816<T>(acc[mt][2 * np + 1], a[mt], r[2], r[3]);
        }
      }
    }
    __syncthreads();
  }

  T* y = static_cast<T*>(p.y);
  const T* bias = static_cast<const T*>(p.bias);
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = m0 + wm * 32 + mt * 16 + g + (e >> 1) * 8;
        const int col = n0 + wn * 32 + nt * 8 + 2 * t + (e & 1);
        if (row < p.m && col < p.n)
          y[row * p.yStride + col] = fromFloat<T>(acc[mt][nt][e] + (bias ? toFloat(bias[col]) : 0.f));
      }
}

WbStatus checkParams(const char* op, const WbInt4MatmulParams* params) {
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "%s: params is NULL", op);
  const WbInt4MatmulParams& p = *params;
  if (!p.x || !p.qweight || !p.scales || !p.y) return fail(WB_STATUS_INVALID_ARGUMENT, "%s: a pointer is NULL", op);
  if (p.m < 0 || p.n < 0 || p.k < 0) return fail(WB_STATUS_INVALID_ARGUMENT, "%s: negative size", op);
  if (p.groupSize != 32 && p.groupSize != 64 && p.groupSize != 128)
    return fail(WB_STATUS_UNSUPPORTED, "%s: group size %d (32, 64 or 128)", op, p.groupSize);
  if (p.k % p.groupSize != 0)
    return fail(WB_STATUS_INVALID_ARGUMENT, "%s: K = %d is not a multiple of the group size %d", op, p.k, p.groupSize);
  if (reinterpret_cast<uintptr_t>(p.x) % 16 || reinterpret_cast<uintptr_t>(p.qweight) % 16 || p.xStride % 8)
    return fail(WB_STATUS_INVALID_ARGUMENT, "%s: x and qweight must be 16-byte aligned, x's row stride a multiple of 8",
                op);
  return WB_STATUS_OK;
}

template <typename T, int M>
WbStatus launchGemv(const WbInt4MatmulParams& p, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(M) * p.k * sizeof(__half);
  const dim3 grid((p.n + kGemvWarps - 1) / kGemvWarps);
  auto kernel = p.zeros ? int4GemvKernel<T, M, true> : int4GemvKernel<T, M, false>;
  if (smem > 48 * 1024 &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) != cudaSuccess)
    return checkLaunch("int4 gemv: cudaFuncSetAttribute");
  kernel<<<grid, kGemvWarps * 32, smem, stream>>>(p);
  return checkLaunch("int4 gemv launch");
}

template <typename T>
WbStatus dispatchGemv(const WbInt4MatmulParams& p, cudaStream_t stream) {
  switch (p.m) {
    case 1: return launchGemv<T, 1>(p, stream);
    case 2: return launchGemv<T, 2>(p, stream);
    case 3: return launchGemv<T, 3>(p, stream);
    case 4: return launchGemv<T, 4>(p, stream);
    case 5: return launchGemv<T, 5>(p, stream);
    case 6: return launchGemv<T, 6>(p, stream);
    case 7: return launchGemv<T, 7>(p, stream);
    default: return launchGemv<T, 8>(p, stream);
  }
}

template <typename T>
WbStatus launchGemm(const WbInt4MatmulParams& p, cudaStream_t stream) {
  const dim3 grid((p.n + 63) / 64, (p.m + 63) / 64);
  if (p.zeros)
    int4GemmKernel<T, true><<<grid, 128, 0, stream>>>(p);
  else
    int4GemmKernel<T, false><<<grid, 128, 0, stream>>>(p);
  return checkLaunch("int4 gemm launch");
}

}  // namespace
}  // namespace wbk

extern "C" WbStatus wbInt4Gemv(const WbInt4MatmulParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (WbStatus s = checkParams("int4 gemv", params); s != WB_STATUS_OK) return s;
  const WbInt4MatmulParams& p = *params;
  if (p.m > 8) return fail(WB_STATUS_INVALID_ARGUMENT, "int4 gemv: M = %d > 8 (use the GEMM)", p.m);
  if (static_cast<size_t>(p.m) * p.k * 2 > 200 * 1024)
    return fail(WB_STATUS_UNSUPPORTED, "int4 gemv: M * K = %lld too large to stage x in shared memory",
                static_cast<long long>(p.m) * p.k);
  if (p.m == 0 || p.n == 0) return WB_STATUS_OK;
  return p.dtype == WB_DTYPE_BF16 ? dispatchGemv<__nv_bfloat16>(p, stream) : dispatchGemv<__half>(p, stream);
}

extern "C" WbStatus wbInt4Gemm(const WbInt4MatmulParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (WbStatus s = checkParams("int4 gemm", params); s != WB_STATUS_OK) return s;
  const WbInt4MatmulParams& p = *params;
  if (p.m == 0 || p.n == 0) return WB_STATUS_OK;
  if ((p.m + 63) / 64 > 65535) return fail(WB_STATUS_INVALID_ARGUMENT, "int4 gemm: M = %d too large", p.m);
  return p.dtype == WB_DTYPE_BF16 ? launchGemm<__nv_bfloat16>(p, stream) : launchGemm<__half>(p, stream);
}

extern "C" WbStatus wbInt4Matmul(const WbInt4MatmulParams* params, cudaStream_t stream) {
  if (params && params->m <= 8 && static_cast<size_t>(params->m) * params->k * 2 <= 200 * 1024)
    return wbInt4Gemv(params, stream);
  return wbInt4Gemm(params, stream);
}
