// FlashAttention-2 forward: one block per (query tile of 16*W rows, batch*head); each
// warp owns 16 query rows, keeps its Q fragments and O accumulator in registers and
// streams K/V tiles of BN keys through double-buffered shared memory (cp.async), with
// the online softmax in the exp2 domain. Writes O and the natural-log L per row.
// Not here: split-KV for tiny grids, wgmma (sm_90a).
#include <cfloat>

#include "kernels/common/mma_sm80.cuh"
#include "kernels/common/status_internal.h"
#include "kernels/flash_attention/flash_attention.h"
#include "kernels/flash_attention/flash_launch.h"

namespace wbk {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Copies rows [row0, row0 + ROWS) of a [T, D] slice (row stride `rs`) into a swizzled
// shared tile; rows >= rows_valid are zero-filled.
template <int ROWS, int D, int THREADS, typename T>
__device__ __forceinline__ void loadTile(T* s, const T* g, int64_t rs, int row0, int rowsValid, int tid) {
  constexpr int kChunksPerRow = D / 8;
  constexpr int kChunks = ROWS * kChunksPerRow;
#pragma unroll
  for (int c = tid; c < kChunks; c += THREADS) {
    const int r = c / kChunksPerRow, ch = c % kChunksPerRow;
    const bool valid = row0 + r < rowsValid;
    const T* src = valid ? g + (row0 + r) * rs + ch * 8 : g;
    cpAsync16(smemAddr(s + swz<D>(r, ch * 8)), src, valid);
  }
}

template <typename T, int D, int W, int BN>
__global__ void __launch_bounds__(W * 32) flashFwdKernel(const WbFlashFwdParams p) {
  constexpr int BM = 16 * W;
  constexpr int kThreads = W * 32;
  extern __shared__ __align__(128) unsigned char smemRaw[];
  T* sQ = reinterpret_cast<T*>(smemRaw);
  T* sK = sQ + BM * D;      // [2][BN][D]
  T* sV = sK + 2 * BN * D;  // [2][BN][D]

  const int mBlock = gridDim.x - 1 - blockIdx.x;  // heavy causal tiles first
  const int b = blockIdx.y / p.heads, h = blockIdx.y % p.heads;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  const int m0 = mBlock * BM;
  const int tq = p.seqlenQ, tk = p.seqlenK;
  const int offset = tk - tq;

  const T* q = static_cast<const T*>(p.q) + b * p.qStride[0] + h * p.qStride[1];
  const T* k = static_cast<const T*>(p.k) + b * p.kStride[0] + h * p.kStride[1];
  const T* v = static_cast<const T*>(p.v) + b * p.vStride[0] + h * p.vStride[1];
  T* o = static_cast<T*>(p.o) + b * p.oStride[0] + h * p.oStride[1];

  int nEnd = tk;
  if (p.causal) nEnd = min(tk, m0 + BM + offset);
  const int nBlocks = (nEnd + BN - 1) / BN;

  loadTile<BM, D, kThreads>(sQ, q, p.qStride[2], m0, tq, tid);
  if (nBlocks > 0) {
    loadTile<BN, D, kThreads>(sK, k, p.kStride[2], 0, tk, tid);
    loadTile<BN, D, kThreads>(sV, v, p.vStride[2], 0, tk, tid);
  }
  cpAsyncCommit();
  cpAsyncWait<0>();
  __syncthreads();

  // This warp's 16 Q rows as A fragments, one per 16-wide slice of D.
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int row = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
    const int col = kk * 16 + (lane >> 4) * 8;
    ldmatrixX4(qf[kk], smemAddr(sQ + swz<D>(row, col)));
  }

  float acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  float rowMax[2] = {-INFINITY, -INFINITY};  // in the scaled log2 domain
  float rowSum[2] = {0.f, 0.f};              // this thread's partial sums
  const float sl2 = p.scale * kLog2e;
  const int rowA = m0 + warp * 16 + g;  // rows of acc[.][0..1]; rowA + 8 for [2..3]

  for (int nb = 0; nb < nBlocks; ++nb) {
    const int stage = nb & 1;
    if (nb + 1 < nBlocks) {
      loadTile<BN, D, kThreads>(sK + (stage ^ 1) * BN * D, k, p.kStride[2], (nb + 1) * BN, tk, tid);
      loadTile<BN, D, kThreads>(sV + (stage ^ 1) * BN * D, v, p.vStride[2], (nb + 1) * BN, tk, tid);
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    const T* sKs = sK + stage * BN * D;
    const T* sVs = sV + stage * BN * D;

    float s[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        uint32_t r[4];
        const int row = np * 16 + (lane & 7) + (lane >> 4) * 8;
        const int col = kk * 16 + ((lane >> 3) & 1) * 8;
        ldmatrixX4(r, smemAddr(sKs + swz<D>(row, col)));
        mma16816<T>(s[2 * np], qf[kk], r[0], r[1]);
        mma16816<T>(s[2 * np + 1], qf[kk], r[2], r[3]);
      }
    }

    const int n0 = nb * BN;
    const bool needMask = (n0 + BN > tk) || (p.causal && n0 + BN - 1 > m0 + offset);
    if (needMask) {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = rowA + (e >> 1) * 8;
          const int j = n0 + nt * 8 + 2 * t + (e & 1);
          if (j >= tk || (p.causal && j > i + offset)) s[nt][e] = -INFINITY;
        }
      }
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mNew = fmaxf(rowMax[r], mx * sl2);
      // A row that has seen no visible key keeps max -inf: shift by 0 instead of NaN.
      const float mSafe = mNew == -INFINITY ? 0.f : mNew;
      const float corr = exp2f(rowMax[r] - mSafe);
      rowMax[r] = mNew;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        const float p0 = exp2f(fmaf(s[nt][2 * r], sl2, -mSafe));
        const float p1 = exp2f(fmaf(s[nt][2 * r + 1], sl2, -mSafe));
        s[nt][2 * r] = p0;
        s[nt][2 * r + 1] = p1;
        sum += p0 + p1;
      }
      rowSum[r] = rowSum[r] * corr + sum;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        acc[dt][2 * r] *= corr;
        acc[dt][2 * r + 1] *= corr;
      }
    }

    // O += P V; the S accumulator layout is exactly the A fragment layout of P.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[4];
      a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t r[4];
        const int row = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = dp * 16 + (lane >> 4) * 8;
        ldmatrixX4Trans(r, smemAddr(sVs + swz<D>(row, col)));
        mma16816<T>(acc[2 * dp], a, r[0], r[1]);
        mma16816<T>(acc[2 * dp + 1], a, r[2], r[3]);
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites this stage
  }

  // Epilogue: normalise, stage this warp's rows through its own part of sQ, then
  // write 16-byte chunks.
  float* lse = p.lse ? p.lse + (static_cast<int64_t>(blockIdx.y) * tq) : nullptr;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = rowSum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int i = rowA + r * 8;
    if (lse && t == 0 && i < tq) lse[i] = l > 0.f ? rowMax[r] * kLn2 + logf(l) : -INFINITY;
    const int srow = warp * 16 + g + r * 8;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t*>(sQ + swz<D>(srow, dt * 8 + 2 * t)) =
          pack2<T>(acc[dt][2 * r] * inv, acc[dt][2 * r + 1] * inv);
    }
  }
  __syncwarp();
  constexpr int kChunksPerRow = D / 8;
#pragma unroll
  for (int c = lane; c < 16 * kChunksPerRow; c += 32) {
    const int r = c / kChunksPerRow, ch = c % kChunksPerRow;
    const int srow = warp * 16 + r;
    const int i = m0 + srow;
    if (i < tq)
      *reinterpret_cast<uint4*>(o + i * p.oStride[2] + ch * 8) =
          *reinterpret_cast<const uint4*>(sQ + swz<D>(srow, ch * 8));
  }
}

template <typename T, int D, int W, int BN>
WbStatus launchFwd(const WbFlashFwdParams& p, cudaStream_t stream) {
  constexpr int BM = 16 * W;
  const size_t smem = static_cast<size_t>(BM * D + 4 * BN * D) * sizeof(T);
  auto kernel = flashFwdKernel<T, D, W, BN>;
  static bool attrSet = false;  // per instantiation; racing threads set the same value
  if (!attrSet) {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) !=
        cudaSuccess)
      return checkLaunch("flash forward: cudaFuncSetAttribute");
    attrSet = true;
  }
  const dim3 grid((p.seqlenQ + BM - 1) / BM, p.batch * p.heads);
  kernel<<<grid, W * 32, smem, stream>>>(p);
  return checkLaunch("flash forward launch");
}

template <typename T>
WbStatus dispatchFwd(const WbFlashFwdParams& p, cudaStream_t stream) {
  if (p.headDim == 64) {
    // Measured on H100 (docs/PERF.md): 4 warps win when causal (less masked work per
    // tile, more blocks), 8 warps when not.
    switch (p.variant) {
      case 1: return launchFwd<T, 64, 8, 64>(p, stream);
      case 2: return launchFwd<T, 64, 4, 64>(p, stream);
      case 3: return launchFwd<T, 64, 8, 128>(p, stream);
      case 4: return launchFwd<T, 64, 4, 128>(p, stream);
      default:
        return p.causal ? launchFwd<T, 64, 4, 64>(p, stream) : launchFwd<T, 64, 8, 64>(p, stream);
    }
  }
  return launchFwd<T, 128, 4, 64>(p, stream);
}

}  // namespace
}  // namespace wbk

extern "C" int wbFlashAttnForwardVariants(void) { return 5; }

extern "C" WbStatus wbFlashAttnForward(const WbFlashFwdParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "flash forward: params is NULL");
  const WbFlashFwdParams& p = *params;
  if (!p.q || !p.k || !p.v || !p.o) return fail(WB_STATUS_INVALID_ARGUMENT, "flash forward: a tensor pointer is NULL");
  if (WbStatus s = checkShape("flash forward", p.batch, p.heads, p.seqlenQ, p.seqlenK, p.headDim, p.causal);
      s != WB_STATUS_OK)
    return s;
  const void* ptrs[] = {p.q, p.k, p.v, p.o};
  const int64_t* strides[] = {p.qStride, p.kStride, p.vStride, p.oStride};
  const char* names[] = {"q", "k", "v", "o"};
  for (int i = 0; i < 4; ++i)
    if (WbStatus s = checkOperand("flash forward", names[i], ptrs[i], strides[i]); s != WB_STATUS_OK) return s;
  if (p.variant < 0 || p.variant >= wbFlashAttnForwardVariants())
    return fail(WB_STATUS_INVALID_ARGUMENT, "flash forward: variant %d out of range", p.variant);
  if (p.seqlenQ == 0 || p.batch == 0 || p.heads == 0) return WB_STATUS_OK;
  return p.dtype == WB_DTYPE_BF16 ? dispatchFwd<__nv_bfloat16>(p, stream) : dispatchFwd<__half>(p, stream);
}
