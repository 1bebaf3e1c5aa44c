// FlashAttention-2 backward in three launches: (1) D = rowsum(dO * O) per query row,
// (2) one block per (key tile of 16*W keys, batch*head): each warp owns 16 keys, keeps
// their K/V fragments and dK/dV accumulators in registers, and walks the query tiles
// (Q, dO, L, D double-buffered through shared memory) computing S^T, P^T, dP^T, dS^T;
// dQ partials go through shared memory and fp32 atomics (float2) into a workspace,
// (3) dQ = scale * workspace cast to the input type. Not here: deterministic dQ.
#include <cfloat>

#include "kernels/common/mma_sm80.cuh"
#include "kernels/common/status_internal.h"
#include "kernels/flash_attention/flash_attention.h"
#include "kernels/flash_attention/flash_launch.h"

namespace wbk {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

template <int ROWS, int D, int THREADS, typename T>
__device__ __forceinline__ void loadTileB(T* s, const T* g, int64_t rs, int row0, int rowsValid, int tid) {
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

// D[bh, i] = sum_d dO[i, d] * O[i, d] in fp32; 8 threads per row, 16 bytes each.
template <typename T, int D>
__global__ void flashBwdDotKernel(const WbFlashBwdParams p, float* delta) {
  constexpr int kThreadsPerRow = D / 8;
  const int64_t rowsTotal = static_cast<int64_t>(p.batch) * p.heads * p.seqlenQ;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kThreadsPerRow;
  const int part = threadIdx.x % kThreadsPerRow;
  float sum = 0.f;
  if (row < rowsTotal) {
    const int i = static_cast<int>(row % p.seqlenQ);
    const int64_t bh = row / p.seqlenQ;
    const int b = static_cast<int>(bh / p.heads), h = static_cast<int>(bh % p.heads);
    const T* o = static_cast<const T*>(p.o) + b * p.oStride[0] + h * p.oStride[1] + i * p.oStride[2] + part * 8;
    const T* dout =
        static_cast<const T*>(p.dout) + b * p.doStride[0] + h * p.doStride[1] + i * p.doStride[2] + part * 8;
    const uint4 ov = *reinterpret_cast<const uint4*>(o);
    const uint4 dv = *reinterpret_cast<const uint4*>(dout);
    const uint32_t* oa = reinterpret_cast<const uint32_t*>(&ov);
    const uint32_t* da = reinterpret_cast<const uint32_t*>(&dv);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x = unpack2<T>(oa[e]), y = unpack2<T>(da[e]);
      sum = fmaf(x.x, y.x, fmaf(x.y, y.y, sum));
    }
  }
#pragma unroll
  for (int w = kThreadsPerRow / 2; w > 0; w >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, w);
  if (row < rowsTotal && part == 0) delta[row] = sum;
}

// dQ = scale * acc, cast; 8 elements per thread.
template <typename T, int D>
__global__ void flashBwdConvertDq(const WbFlashBwdParams p, const float* acc) {
  constexpr int kThreadsPerRow = D / 8;
  const int64_t rowsTotal = static_cast<int64_t>(p.batch) * p.heads * p.seqlenQ;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = idx / kThreadsPerRow;
  const int part = static_cast<int>(idx % kThreadsPerRow);
  if (row >= rowsTotal) return;
  const int i = static_cast<int>(row % p.seqlenQ);
  const int64_t bh = row / p.seqlenQ;
  const int b = static_cast<int>(bh / p.heads), h = static_cast<int>(bh % p.heads);
  const float4 a0 = *reinterpret_cast<const float4*>(acc + row * D + part * 8);
  const float4 a1 = *reinterpret_cast<const float4*>(acc + row * D + part * 8 + 4);
  uint4 out;
  out.x = pack2<T>(a0.x * p.scale, a0.y * p.scale);
  out.y = pack2<T>(a0.z * p.scale, a0.w * p.scale);
  out.z = pack2<T>(a1.x * p.scale, a1.y * p.scale);
  out.w = pack2<T>(a1.z * p.scale, a1.w * p.scale);
  T* dq = static_cast<T*>(p.dq) + b * p.dqStride[0] + h * p.dqStride[1] + i * p.dqStride[2] + part * 8;
  *reinterpret_cast<uint4*>(dq) = out;
}

// W warps, BN = 16 W keys per block, BM queries per step.
template <typename T, int D, int W, int BM>
__global__ void __launch_bounds__(W * 32) flashBwdKernel(const WbFlashBwdParams p, float* dqAcc,
                                                         const float* delta) {
  constexpr int BN = 16 * W;
  constexpr int kThreads = W * 32;
  constexpr int kRowTiles = BM / 16;           // 16-query tiles of a step
  constexpr int kDSplit = W / kRowTiles;       // warps sharing one tile for dQ
  constexpr int kDqTiles = D / 8 / kDSplit;    // 8-wide column tiles per warp for dQ
  static_assert(W % kRowTiles == 0 && kDqTiles % 2 == 0, "warps must tile the dQ step");
  extern __shared__ __align__(128) unsigned char smemRaw[];
  T* sK = reinterpret_cast<T*>(smemRaw);  // [BN][D]
  T* sV = sK + BN * D;                    // [BN][D]
  T* sQ = sV + BN * D;                    // [2][BM][D]
  T* sdO = sQ + 2 * BM * D;               // [2][BM][D]
  T* sdS = sdO + 2 * BM * D;              // [BN][BM]: dS^T, key-major
  float* sL = reinterpret_cast<float*>(sdS + BN * BM);  // [2][BM], L * log2(e)
  float* sD = sL + 2 * BM;                              // [2][BM]

  const int nBlock = blockIdx.x;
  const int bh = blockIdx.y;
  const int b = bh / p.heads, h = bh % p.heads;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  const int n0 = nBlock * BN;
  const int tq = p.seqlenQ, tk = p.seqlenK;
  const int offset = tk - tq;

  const T* q = static_cast<const T*>(p.q) + b * p.qStride[0] + h * p.qStride[1];
  const T* k = static_cast<const T*>(p.k) + b * p.kStride[0] + h * p.kStride[1];
  const T* v = static_cast<const T*>(p.v) + b * p.vStride[0] + h * p.vStride[1];
  const T* dout = static_cast<const T*>(p.dout) + b * p.doStride[0] + h * p.doStride[1];
  const float* lse = p.lse + static_cast<int64_t>(bh) * tq;
  const float* dl = delta + static_cast<int64_t>(bh) * tq;
  float* dqa = dqAcc + static_cast<int64_t>(bh) * tq * D;

  // Queries that can see any key of this tile: i + offset >= n0.
  const int mFirst = p.causal ? max(0, n0 - offset) / BM : 0;
  const int mBlocks = (tq + BM - 1) / BM;

  auto loadStep = [&](int mb, int stage) {
    loadTileB<BM, D, kThreads>(sQ + stage * BM * D, q, p.qStride[2], mb * BM, tq, tid);
    loadTileB<BM, D, kThreads>(sdO + stage * BM * D, dout, p.doStride[2], mb * BM, tq, tid);
    for (int i = tid; i < BM; i += kThreads) {
      const int row = mb * BM + i;
      sL[stage * BM + i] = row < tq ? lse[row] * kLog2e : 0.f;
      sD[stage * BM + i] = row < tq ? dl[row] : 0.f;
    }
  };

  loadTileB<BN, D, kThreads>(sK, k, p.kStride[2], n0, tk, tid);
  loadTileB<BN, D, kThreads>(sV, v, p.vStride[2], n0, tk, tid);
  if (mFirst < mBlocks) loadStep(mFirst, 0);
  cpAsyncCommit();
  cpAsyncWait<0>();
  __syncthreads();

  uint32_t kf[D / 16][4], vf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int row = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
    const int col = kk * 16 + (lane >> 4) * 8;
    ldmatrixX4(kf[kk], smemAddr(sK + swz<D>(row, col)));
    ldmatrixX4(vf[kk], smemAddr(sV + swz<D>(row, col)));
  }
  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[i][e] = dv[i][e] = 0.f;

  const float sl2 = p.scale * kLog2e;
  const int keyA = n0 + warp * 16 + g;  // keys of rows [0..1] of the C fragments; +8 for [2..3]

  for (int mb = mFirst; mb < mBlocks; ++mb) {
    const int stage = (mb - mFirst) & 1;
    if (mb + 1 < mBlocks) {
      loadStep(mb + 1, stage ^ 1);
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    const T* sQs = sQ + stage * BM * D;
    const T* sdOs = sdO + stage * BM * D;
    const float* sLs = sL + stage * BM;
    const float* sDs = sD + stage * BM;
    const int m0 = mb * BM;

    // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x BM queries.
    float st[BM / 8][4], dpt[BM / 8][4];
#pragma unroll
    for (int i = 0; i < BM / 8; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[i][e] = dpt[i][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int qp = 0; qp < BM / 16; ++qp) {
        const int row = qp * 16 + (lane & 7) + (lane >> 4) * 8;
        const int col = kk * 16 + ((lane >> 3) & 1) * 8;
        uint32_t r[4];
        ldmatrixX4(r, smemAddr(sQs + swz<D>(row, col)));
        mma16816<T>(st[2 * qp], kf[kk], r[0], r[1]);
        mma16816<T>(st[2 * qp + 1], kf[kk], r[2], r[3]);
        ldmatrixX4(r, smemAddr(sdOs + swz<D>(row, col)));
        mma16816<T>(dpt[2 * qp], vf[kk], r[0], r[1]);
        mma16816<T>(dpt[2 * qp + 1], vf[kk], r[2], r[3]);
      }
    }

    // P^T = exp(S^T scale - L), dS^T = P^T (dP^T - D); masked entries are exactly 0.
    const bool needMask = (m0 + BM > tq) || (n0 + BN > tk) || (p.causal && n0 + BN - 1 > m0 + offset);
#pragma unroll
    for (int qt = 0; qt < BM / 8; ++qt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qc = qt * 8 + 2 * t + (e & 1);
        float pv = exp2f(fmaf(st[qt][e], sl2, -sLs[qc]));
        if (needMask) {
          const int key = keyA + (e >> 1) * 8;
          const int qi = m0 + qc;
          if (qi >= tq || key >= tk || (p.causal && key > qi + offset)) pv = 0.f;
        }
        st[qt][e] = pv;
        dpt[qt][e] = pv * (dpt[qt][e] - sDs[qc]);
      }
    }

    // dV += P^T dO and dK += dS^T Q; A operands straight from the C fragments.
#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) {
      uint32_t ap[4], ads[4];
      ap[0] = pack2<T>(st[2 * kk][0], st[2 * kk][1]);
      ap[1] = pack2<T>(st[2 * kk][2], st[2 * kk][3]);
      ap[2] = pack2<T>(st[2 * kk + 1][0], st[2 * kk + 1][1]);
      ap[3] = pack2<T>(st[2 * kk + 1][2], st[2 * kk + 1][3]);
      ads[0] = pack2<T>(dpt[2 * kk][0], dpt[2 * kk][1]);
      ads[1] = pack2<T>(dpt[2 * kk][2], dpt[2 * kk][3]);
      ads[2] = pack2<T>(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]);
      ads[3] = pack2<T>(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3]);
      // dS^T to shared memory for the dQ step (key-major rows of BM queries).
      const int srow = warp * 16 + g;
      *reinterpret_cast<uint32_t*>(sdS + swz<BM>(srow, kk * 16 + 2 * t)) = ads[0];
      *reinterpret_cast<uint32_t*>(sdS + swz<BM>(srow + 8, kk * 16 + 2 * t)) = ads[1];
      *reinterpret_cast<uint32_t*>(sdS + swz<BM>(srow, kk * 16 + 8 + 2 * t)) = ads[2];
      *reinterpret_cast<uint32_t*>(sdS + swz<BM>(srow + 8, kk * 16 + 8 + 2 * t)) = ads[3];
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        const int row = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = dp * 16 + (lane >> 4) * 8;
        uint32_t r[4];
        ldmatrixX4Trans(r, smemAddr(sdOs + swz<D>(row, col)));
        mma16816<T>(dv[2 * dp], ap, r[0], r[1]);
        mma16816<T>(dv[2 * dp + 1], ap, r[2], r[3]);
        ldmatrixX4Trans(r, smemAddr(sQs + swz<D>(row, col)));
        mma16816<T>(dk[2 * dp], ads, r[0], r[1]);
        mma16816<T>(dk[2 * dp + 1], ads, r[2], r[3]);
      }
    }
    __syncthreads();  // dS^T complete

    // dQ[16 queries of this warp's tile, its share of D] += dS K.
    {
      const int rowTile = warp % kRowTiles, dPart = warp / kRowTiles;
      float dq[kDqTiles][4];
#pragma unroll
      for (int i = 0; i < kDqTiles; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t a[4];
        {
          const int key = kk * 16 + (lane & 7) + (lane >> 4) * 8;
          const int qcol = rowTile * 16 + ((lane >> 3) & 1) * 8;
          ldmatrixX4Trans(a, smemAddr(sdS + swz<BM>(key, qcol)));
        }
#pragma unroll
        for (int dp = 0; dp < kDqTiles / 2; ++dp) {
          const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
          const int col = (dPart * kDqTiles + 2 * dp) * 8 + (lane >> 4) * 8;
          uint32_t r[4];
          ldmatrixX4Trans(r, smemAddr(sK + swz<D>(key, col)));
          mma16816<T>(dq[2 * dp], a, r[0], r[1]);
          mma16816<T>(dq[2 * dp + 1], a, r[2], r[3]);
        }
      }
      const int qi = m0 + rowTile * 16 + g;
#pragma unroll
      for (int dt = 0; dt < kDqTiles; ++dt) {
        const int col = (dPart * kDqTiles + dt) * 8 + 2 * t;
        if (qi < tq) atomicAdd(reinterpret_cast<float2*>(dqa + qi * D + col), make_float2(dq[dt][0], dq[dt][1]));
        if (qi + 8 < tq)
          atomicAdd(reinterpret_cast<float2*>(dqa + (qi + 8) * D + col), make_float2(dq[dt][2], dq[dt][3]));
      }
    }
    __syncthreads();  // sdS and this stage are overwritten next
  }

  T* dkOut = static_cast<T*>(p.dk) + b * p.dkStride[0] + h * p.dkStride[1];
  T* dvOut = static_cast<T*>(p.dv) + b * p.dvStride[0] + h * p.dvStride[1];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = keyA + r * 8;
    if (key >= tk) continue;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      const int col = dt * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(dkOut + key * p.dkStride[2] + col) =
          pack2<T>(dk[dt][2 * r] * p.scale, dk[dt][2 * r + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dvOut + key * p.dvStride[2] + col) = pack2<T>(dv[dt][2 * r], dv[dt][2 * r + 1]);
    }
  }
}

template <typename T, int D, int W, int BM>
WbStatus launchBwd(const WbFlashBwdParams& p, cudaStream_t stream) {
  constexpr int BN = 16 * W;
  const int64_t rows = static_cast<int64_t>(p.batch) * p.heads * p.seqlenQ;
  float* dqAcc = static_cast<float*>(p.workspace);
  float* delta = dqAcc + rows * D;
  if (cudaMemsetAsync(dqAcc, 0, rows * D * sizeof(float), stream) != cudaSuccess)
    return checkLaunch("flash backward: zeroing the dQ accumulator");
  {
    constexpr int kThreads = 256;
    const int64_t threads = rows * (D / 8);
    flashBwdDotKernel<T, D><<<static_cast<unsigned>((threads + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        p, delta);
    if (WbStatus s = checkLaunch("flash backward: D = rowsum(dO * O)"); s != WB_STATUS_OK) return s;
  }
  const size_t smem = static_cast<size_t>(2 * BN * D + 4 * BM * D + BN * BM) * sizeof(T) + 4 * BM * sizeof(float);
  auto kernel = flashBwdKernel<T, D, W, BM>;
  static bool attrSet = false;
  if (!attrSet) {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) !=
        cudaSuccess)
      return checkLaunch("flash backward: cudaFuncSetAttribute");
    attrSet = true;
  }
  const dim3 grid((p.seqlenK + BN - 1) / BN, p.batch * p.heads);
  kernel<<<grid, W * 32, smem, stream>>>(p, dqAcc, delta);
  if (WbStatus s = checkLaunch("flash backward launch"); s != WB_STATUS_OK) return s;
  {
    constexpr int kThreads = 256;
    const int64_t threads = rows * (D / 8);
    flashBwdConvertDq<T, D><<<static_cast<unsigned>((threads + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        p, dqAcc);
  }
  return checkLaunch("flash backward: dQ conversion");
}

template <typename T>
WbStatus dispatchBwd(const WbFlashBwdParams& p, cudaStream_t stream) {
  if (p.headDim == 64) {
    switch (p.variant) {
      case 1: return launchBwd<T, 64, 8, 64>(p, stream);
      default: return launchBwd<T, 64, 4, 64>(p, stream);
    }
  }
  return launchBwd<T, 128, 4, 64>(p, stream);
}

}  // namespace
}  // namespace wbk

extern "C" int wbFlashAttnBackwardVariants(void) { return 2; }

extern "C" size_t wbFlashAttnBackwardWorkspace(int batch, int heads, int seqlenQ, int headDim) {
  const size_t rows = static_cast<size_t>(batch) * heads * seqlenQ;
  return rows * (headDim + 1) * sizeof(float) + 16;
}

extern "C" WbStatus wbFlashAttnBackward(const WbFlashBwdParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "flash backward: params is NULL");
  const WbFlashBwdParams& p = *params;
  if (WbStatus s = checkShape("flash backward", p.batch, p.heads, p.seqlenQ, p.seqlenK, p.headDim, p.causal);
      s != WB_STATUS_OK)
    return s;
  const void* ptrs[] = {p.q, p.k, p.v, p.o, p.dout, p.dq, p.dk, p.dv};
  const int64_t* strides[] = {p.qStride, p.kStride, p.vStride, p.oStride, p.doStride, p.dqStride, p.dkStride, p.dvStride};
  const char* names[] = {"q", "k", "v", "o", "dout", "dq", "dk", "dv"};
  for (int i = 0; i < 8; ++i)
    if (WbStatus s = checkOperand("flash backward", names[i], ptrs[i], strides[i]); s != WB_STATUS_OK) return s;
  if (!p.lse || !p.workspace) return fail(WB_STATUS_INVALID_ARGUMENT, "flash backward: lse or workspace is NULL");
  if (reinterpret_cast<uintptr_t>(p.workspace) % 16 != 0)
    return fail(WB_STATUS_INVALID_ARGUMENT, "flash backward: workspace is not 16-byte aligned");
  if (p.variant < 0 || p.variant >= wbFlashAttnBackwardVariants())
    return fail(WB_STATUS_INVALID_ARGUMENT, "flash backward: variant %d out of range", p.variant);
  if (p.batch == 0 || p.heads == 0) return WB_STATUS_OK;
  if (p.seqlenQ == 0) return fail(WB_STATUS_UNSUPPORTED, "flash backward: Tq = 0 (nothing to differentiate)");
  return p.dtype == WB_DTYPE_BF16 ? dispatchBwd<__nv_bfloat16>(p, stream) : dispatchBwd<__half>(p, stream);
}
