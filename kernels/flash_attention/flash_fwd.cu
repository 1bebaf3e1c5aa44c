// FlashAttention-2 forward: one block per (query tile of BM = 16*MT*W rows, batch*head);
// each warp owns MT 16-row m-tiles, keeps their Q fragments and O accumulators in
// registers and streams K/V tiles of BN keys through double-buffered shared memory
// (cp.async), so every K/V fragment read from shared memory feeds MT MMAs. Online
// softmax in the exp2 domain; causal tiles a warp cannot see are skipped per warp.
// Writes O and the natural-log L per row. Not here: split-KV for tiny grids, wgmma.
#include <cfloat>
#include <type_traits>

#include "kernels/common/mma_sm80.cuh"
#include "kernels/common/status_internal.h"
#include "kernels/common/tile_load.cuh"
#include "kernels/flash_attention/flash_attention.h"
#include "kernels/flash_attention/flash_launch.h"

namespace wbk {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// 2^x as the single MUFU instruction; ex2(-inf) = +0, which the masking relies on.
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// W warps x MT m-tiles x BN keys per tile; MINB = the blocks per SM the registers are
// bounded for. levelMajor launches the grid as (batch*head, m-block) so the heaviest
// causal tiles of every head start first; otherwise (m-block, batch*head) keeps one
// head's blocks together (its K/V stays in L2), heavy tiles first within the head.
template <typename T, int D, int W, int MT, int BN, int MINB, bool QREG, bool ONE_SYNC, bool DIAG_SKIP>
__global__ void __launch_bounds__(W * 32, MINB) flashFwdKernel(const WbFlashFwdParams p, int levelMajor) {
  constexpr int WM = 16 * MT;  // query rows per warp
  constexpr int BM = WM * W;
  constexpr int kThreads = W * 32;
  extern __shared__ __align__(128) unsigned char smemRaw[];
  T* sQ = reinterpret_cast<T*>(smemRaw);
  T* sK = sQ + BM * D;      // [2][BN][D]
  T* sV = sK + 2 * BN * D;  // [2][BN][D]

  const int mBlock = levelMajor ? gridDim.y - 1 - blockIdx.y : gridDim.x - 1 - blockIdx.x;
  const int bh = levelMajor ? blockIdx.x : blockIdx.y;
  const int b = bh / p.heads, h = bh % p.heads;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  const int m0 = mBlock * BM;
  const int tq = p.seqlenQ, tk = p.seqlenK;
  const int offset = tk - tq;

  const T* q = static_cast<const T*>(p.q) + b * p.qStride[0] + h * p.qStride[1];
  const T* k = static_cast<const T*>(p.k) + b * p.kStride[0] + h * p.kStride[1];
  const T* v = static_cast<const T*>(p.v) + b * p.vStride[0] + h * p.vStride[1];
  T* o = static_cast<T*>(p.o) + b * p.oStride[0] + h * p.oStride[1];

  // offset >= 0 and m0 + BM > 0, so every block has at least one key tile.
  const int nEnd = p.causal ? min(tk, m0 + BM + offset) : tk;
  const int nBlocks = (nEnd + BN - 1) / BN;

  loadTile<BM, D, kThreads>(sQ, q, p.qStride[2], m0, tq, tid);
  loadTile<BN, D, kThreads>(sK, k, p.kStride[2], 0, tk, tid);
  loadTile<BN, D, kThreads>(sV, v, p.vStride[2], 0, tk, tid);
  cpAsyncCommit();
  cpAsyncWait<0>();
  __syncthreads();

  const int wRow0 = m0 + warp * WM;  // this warp's first query row
  // Its Q rows as A fragments, one per m-tile and 16-wide slice of D: held in registers
  // (QREG) or re-read from shared memory per key tile, which frees MT * D / 4 registers.
  auto loadQ = [&](uint32_t(&f)[4], int mt, int kk) {
    const int row = warp * WM + mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
    const int col = kk * 16 + (lane >> 4) * 8;
    ldmatrixX4(f, smemAddr(sQ + swz<D>(row, col)));
  };
  uint32_t qf[QREG ? MT : 1][QREG ? D / 16 : 1][4];
  if constexpr (QREG) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) loadQ(qf[mt][kk], mt, kk);
  }

  float acc[MT][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) acc[mt][i][0] = acc[mt][i][1] = acc[mt][i][2] = acc[mt][i][3] = 0.f;
  float rowMax[MT][2], rowSum[MT][2];  // max in the scaled log2 domain; partial sums
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) rowMax[mt][0] = rowMax[mt][1] = -INFINITY, rowSum[mt][0] = rowSum[mt][1] = 0.f;
  const float sl2 = p.scale * kLog2e;

  for (int nb = 0; nb < nBlocks; ++nb) {
    const int stage = nb & 1;
    auto prefetch = [&] {
      loadTile<BN, D, kThreads>(sK + (stage ^ 1) * BN * D, k, p.kStride[2], (nb + 1) * BN, tk, tid);
      loadTile<BN, D, kThreads>(sV + (stage ^ 1) * BN * D, v, p.vStride[2], (nb + 1) * BN, tk, tid);
      cpAsyncCommit();
    };
    if constexpr (ONE_SYNC) {
      // One barrier per tile: after it, tile nb is visible to all and every warp is
      // done with tile nb - 1, so its stage can take the prefetch of nb + 1.
      cpAsyncWait<0>();
      __syncthreads();
      if (nb + 1 < nBlocks) prefetch();
    } else {
      if (nb + 1 < nBlocks) {
        prefetch();
        cpAsyncWait<1>();
      } else {
        cpAsyncWait<0>();
      }
      __syncthreads();
    }
    const int n0 = nb * BN;
    // A causal tile starting past this warp's last row changes nothing for it (all its
    // scores would be -inf); the block's other warps may still need it.
    const int lastKey = wRow0 + WM - 1 + offset;  // the last key this warp's rows can see
    // One key tile for this warp; guarded (G) it skips the 16-key groups past lastKey,
    // the MMAs and exps a diagonal tile would spend on fully masked columns.
    auto step = [&](auto guarded, int npVis) {
      constexpr bool G = decltype(guarded)::value;
      const T* sKs = sK + stage * BN * D;
      const T* sVs = sV + stage * BN * D;

      float s[MT][BN / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        [[maybe_unused]] uint32_t qs[QREG ? 1 : MT][4];
        if constexpr (!QREG) {
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) loadQ(qs[mt], mt, kk);
        }
#pragma unroll
        for (int np = 0; np < BN / 16; ++np) {
          if (G && np >= npVis) continue;
          uint32_t r[4];
          const int row = np * 16 + (lane & 7) + (lane >> 4) * 8;
          const int col = kk * 16 + ((lane >> 3) & 1) * 8;
          ldmatrixX4(r, smemAddr(sKs + swz<D>(row, col)));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            if constexpr (QREG) {
              mma16816<T>(s[mt][2 * np], qf[mt][kk], r[0], r[1]);
              mma16816<T>(s[mt][2 * np + 1], qf[mt][kk], r[2], r[3]);
            } else {
              mma16816<T>(s[mt][2 * np], qs[mt], r[0], r[1]);
              mma16816<T>(s[mt][2 * np + 1], qs[mt], r[2], r[3]);
            }
          }
        }
      }

      // Only tiles that cross the key end or this warp's causal diagonal need masks.
      if (n0 + BN > tk || (p.causal && n0 + BN - 1 > wRow0 + offset)) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int i = wRow0 + mt * 16 + g + (e >> 1) * 8;
              const int j = n0 + nt * 8 + 2 * t + (e & 1);
              if (j >= tk || (p.causal && j > i + offset)) s[mt][nt][e] = -INFINITY;
            }
      }

#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float mx = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float mNew = fmaxf(rowMax[mt][r], mx * sl2);
          // A row that has seen no visible key keeps max -inf: shift by 0 instead of NaN.
          const float mSafe = mNew == -INFINITY ? 0.f : mNew;
          const float corr = fastExp2(rowMax[mt][r] - mSafe);
          rowMax[mt][r] = mNew;
          float sum = 0.f;
#pragma unroll
          for (int nt = 0; nt < BN / 8; ++nt) {
            if (G && nt >= 2 * npVis) {  // all masked: exp would give exactly 0
              s[mt][nt][2 * r] = s[mt][nt][2 * r + 1] = 0.f;
              continue;
            }
            const float p0 = fastExp2(fmaf(s[mt][nt][2 * r], sl2, -mSafe));
            const float p1 = fastExp2(fmaf(s[mt][nt][2 * r + 1], sl2, -mSafe));
            s[mt][nt][2 * r] = p0;
            s[mt][nt][2 * r + 1] = p1;
            sum += p0 + p1;
          }
          rowSum[mt][r] = rowSum[mt][r] * corr + sum;
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt) {
            acc[mt][dt][2 * r] *= corr;
            acc[mt][dt][2 * r + 1] *= corr;
          }
        }

      // O += P V; the S accumulator layout is exactly the A fragment layout of P.
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        if (G && kk >= npVis) continue;  // P is zero there
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          a[mt][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
          a[mt][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
          a[mt][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
          a[mt][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t r[4];
          const int row = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
          const int col = dp * 16 + (lane >> 4) * 8;
          ldmatrixX4Trans(r, smemAddr(sVs + swz<D>(row, col)));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma16816<T>(acc[mt][2 * dp], a[mt], r[0], r[1]);
            mma16816<T>(acc[mt][2 * dp + 1], a[mt], r[2], r[3]);
          }
        }
      }
    };
    if (!p.causal || n0 <= lastKey) {
      if (DIAG_SKIP && p.causal && n0 + BN - 1 > lastKey)
        step(std::true_type{}, (lastKey - n0) / 16 + 1);
      else
        step(std::false_type{}, BN / 16);
    }
    if constexpr (!ONE_SYNC) __syncthreads();  // the next iteration's prefetch overwrites this stage
  }

  // Epilogue: normalise, stage this warp's rows through its own rows of sQ (only this
  // warp reads them, and all its reads are done), then write 16-byte chunks.
  float* lse = p.lse ? p.lse + (static_cast<int64_t>(bh) * tq) : nullptr;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = rowSum[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const int srow = warp * WM + mt * 16 + g + r * 8;
      const int i = m0 + srow;
      if (lse && t == 0 && i < tq) lse[i] = l > 0.f ? rowMax[mt][r] * kLn2 + logf(l) : -INFINITY;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        *reinterpret_cast<uint32_t*>(sQ + swz<D>(srow, dt * 8 + 2 * t)) =
            pack2<T>(acc[mt][dt][2 * r] * inv, acc[mt][dt][2 * r + 1] * inv);
      }
    }
  __syncwarp();
  constexpr int kChunksPerRow = D / 8;
#pragma unroll
  for (int c = lane; c < WM * kChunksPerRow; c += 32) {
    const int r = c / kChunksPerRow, ch = c % kChunksPerRow;
    const int srow = warp * WM + r;
    const int i = m0 + srow;
    if (i < tq)
      *reinterpret_cast<uint4*>(o + i * p.oStride[2] + ch * 8) =
          *reinterpret_cast<const uint4*>(sQ + swz<D>(srow, ch * 8));
  }
}

template <typename T, int D, int W, int MT, int BN, int MINB, bool QREG = true, bool ONE_SYNC = true,
          bool DIAG_SKIP = false>
WbStatus launchFwd(const WbFlashFwdParams& p, bool levelMajor, cudaStream_t stream) {
  constexpr int BM = 16 * MT * W;
  const size_t smem = static_cast<size_t>(BM * D + 4 * BN * D) * sizeof(T);
  auto kernel = flashFwdKernel<T, D, W, MT, BN, MINB, QREG, ONE_SYNC, DIAG_SKIP>;
  static bool attrSet = false;  // per instantiation; racing threads set the same value
  if (!attrSet) {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) !=
        cudaSuccess)
      return checkLaunch("flash forward: cudaFuncSetAttribute");
    attrSet = true;
  }
  const unsigned mBlocks = static_cast<unsigned>((p.seqlenQ + BM - 1) / BM);
  const unsigned bh = static_cast<unsigned>(p.batch * p.heads);
  if (levelMajor && mBlocks > 65535) levelMajor = false;  // grid.y limit; bh <= 65535 is checked
  const dim3 grid = levelMajor ? dim3(bh, mBlocks) : dim3(mBlocks, bh);
  kernel<<<grid, W * 32, smem, stream>>>(p, levelMajor ? 1 : 0);
  return checkLaunch("flash forward launch");
}

// Head dim 64 tile variants: W warps x MT m-tiles x BN keys, MINB blocks per SM for
// the register bound, Q fragments in registers or re-read from shared memory, one or
// two barriers per key tile, diagonal-tile group skipping, grid order. Variant 0 is
// the default below, the fastest on the H100 (docs/PERF.md): 4 warps x 2 m-tiles x
// 128 keys with Q re-read, level-major when causal (9), head-major when not (5).
// Registers (ptxas, sm_90): MT2 BN64 251 (2 blocks/SM); MT2 BN128 255, small spill.
constexpr int kFwdDefaultCausal = 9;
constexpr int kFwdDefaultFull = 5;

template <typename T>
WbStatus dispatchFwd(const WbFlashFwdParams& p, cudaStream_t stream) {
  if (p.headDim == 64) {
    const int v = p.variant != 0 ? p.variant : p.causal ? kFwdDefaultCausal : kFwdDefaultFull;
    switch (v) {
      case 1: return launchFwd<T, 64, 4, 1, 64, 1, true, false>(p, false, stream);  // the first kernel's shape
      case 2: return launchFwd<T, 64, 4, 2, 64, 1, true, false>(p, false, stream);
      case 3: return launchFwd<T, 64, 4, 2, 64, 1, true, false>(p, true, stream);
      case 4: return launchFwd<T, 64, 4, 2, 64, 1, true, true>(p, true, stream);
      case 5: return launchFwd<T, 64, 4, 2, 128, 1, false, true>(p, false, stream);
      case 7: return launchFwd<T, 64, 4, 2, 128, 1, false, true, true>(p, true, stream);
      case 8: return launchFwd<T, 64, 4, 2, 64, 1, true, true, true>(p, true, stream);
      case 9: return launchFwd<T, 64, 4, 2, 128, 1, false, false>(p, true, stream);
      default: return launchFwd<T, 64, 4, 2, 128, 1, false, true>(p, true, stream);  // 6
    }
  }
  return launchFwd<T, 128, 4, 1, 64, 1>(p, false, stream);
}

}  // namespace
}  // namespace wbk

extern "C" int wbFlashAttnForwardVariants(void) { return 10; }

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
