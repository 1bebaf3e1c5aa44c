// LayerNorm forward (fp32 in, 16-bit out) and backward (16-bit dy, fp32 dx, dgamma,
// dbeta); see layernorm.h. A "team" of W warps owns a row (W = 1 up to 1024 columns,
// else 4), each thread keeps its V float4s of the row in registers, so x and dy cross
// HBM once. The backward's teams loop over rows accumulating dy * xhat and dy per
// column in registers; the block sums its teams in shared memory into one partial row,
// and a second kernel adds the partial rows in a fixed order.
#include "kernels/layernorm/layernorm.h"

#include <cstdint>
#include <type_traits>

#include "kernels/common/convert.cuh"
#include "kernels/common/status_internal.h"

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Teams * cols <= 8 * 1024 for both team sizes: the backward's block reduction buffer.
constexpr int kReduceFloats = kWarps * 1024;
// Partial rows of the backward at most: 4 blocks per SM of an H100 (132 SMs). A constant,
// not the device's count, so the summation order (and the result) is the same anywhere.
constexpr int kMaxBackwardBlocks = 528;
constexpr int kReduceRows = 32;  // partial rows summed side by side in the reduction

using wbk::fromFloat;
using wbk::toFloat;

template <int V>
using IntC = std::integral_constant<int, V>;

// Sum over the W warps of a team; every thread of the team gets the same value (the
// xor butterfly adds the same pairs on every lane). For W > 1 all threads of the block
// must call it: it synchronises the block.
template <int W>
__device__ __forceinline__ void teamSum(float& a, float& b, float2* scratch) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    a += __shfl_xor_sync(0xffffffffu, a, off);
    b += __shfl_xor_sync(0xffffffffu, b, off);
  }
  if constexpr (W > 1) {
    const int warp = threadIdx.x / 32, first = warp / W * W;
    if (threadIdx.x % 32 == 0) scratch[warp] = make_float2(a, b);
    __syncthreads();
    a = 0.f;
    b = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      a += scratch[first + w].x;
      b += scratch[first + w].y;
    }
    __syncthreads();  // the scratch is reused by the next call
  }
}

// Component k of a float4; k is a constant after unrolling, so this stays in registers.
__device__ __forceinline__ float comp(const float4& v, int k) { return reinterpret_cast<const float*>(&v)[k]; }
__device__ __forceinline__ float& comp(float4& v, int k) { return reinterpret_cast<float*>(&v)[k]; }

template <typename T, int W, int V>
__global__ void __launch_bounds__(kThreads, V <= 6 ? 4 : 3)
    layerNormForward(const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
                     T* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd, int rows, int cols,
                     float eps) {
  constexpr int kLanes = 32 * W, kTeams = kWarps / W;
  __shared__ float2 scratch[kWarps];
  const int team = threadIdx.x / kLanes, t = threadIdx.x % kLanes;
  const int row = blockIdx.x * kTeams + team;
  const bool active = row < rows;
  const int nvec = cols / 4;
  const float4* xr = reinterpret_cast<const float4*>(x) + static_cast<size_t>(row) * nvec;

  float4 v[V];
  float s = 0.f, unused = 0.f;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int c = t + i * kLanes;
    v[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (active && c < nvec) {
      v[i] = xr[c];
      s += (v[i].x + v[i].y) + (v[i].z + v[i].w);
    }
  }
  teamSum<W>(s, unused, scratch);
  const float mu = s / static_cast<float>(cols);
  // Two passes over the registers: no cancellation in E[x^2] - mean^2.
  float q = 0.f;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int c = t + i * kLanes;
    if (active && c < nvec) {
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float d = comp(v[i], k) - mu;
        q += d * d;
      }
    }
  }
  teamSum<W>(q, unused, scratch);
  const float rs = rsqrtf(q / static_cast<float>(cols) + eps);
  if (!active) return;
  if (t == 0) {
    mean[row] = mu;
    rstd[row] = rs;
  }
  uint2* yr = reinterpret_cast<uint2*>(y) + static_cast<size_t>(row) * nvec;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int c = t + i * kLanes;
    if (c >= nvec) continue;
    const float4 g = reinterpret_cast<const float4*>(gamma)[c];
    const float4 b = reinterpret_cast<const float4*>(beta)[c];
    uint2 out;
    T* o = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int k = 0; k < 4; ++k) o[k] = fromFloat<T>((comp(v[i], k) - mu) * rs * comp(g, k) + comp(b, k));
    yr[c] = out;
  }
}

template <typename T, int W, int V>
__global__ void __launch_bounds__(kThreads, V <= 6 ? 2 : 1)
    layerNormBackward(const T* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ mean,
                      const float* __restrict__ rstd, const float* __restrict__ gamma, float* __restrict__ dx,
                      float* __restrict__ dgammaPartial, float* __restrict__ dbetaPartial, int rows, int cols) {
  constexpr int kLanes = 32 * W, kTeams = kWarps / W;
  __shared__ float2 scratch[kWarps];
  __shared__ float4 reduce[kReduceFloats / 4];
  const int team = threadIdx.x / kLanes, t = threadIdx.x % kLanes;
  const int nvec = cols / 4;
  const float inv = 1.f / static_cast<float>(cols);
  const float4* g4 = reinterpret_cast<const float4*>(gamma);

  float4 accGamma[V], accBeta[V];
#pragma unroll
  for (int i = 0; i < V; ++i) accGamma[i] = accBeta[i] = make_float4(0.f, 0.f, 0.f, 0.f);

  // The loop bound is the same for every team of the block (teamSum may synchronise it).
  for (int base = blockIdx.x * kTeams; base < rows; base += gridDim.x * kTeams) {
    const int row = base + team;
    const bool active = row < rows;
    const float4* xr = reinterpret_cast<const float4*>(x) + static_cast<size_t>(row) * nvec;
    const uint2* dr = reinterpret_cast<const uint2*>(dy) + static_cast<size_t>(row) * nvec;
    const float mu = active ? mean[row] : 0.f, rs = active ? rstd[row] : 0.f;
    float4 xv[V];
    uint2 dv[V];
    float sg = 0.f, sgx = 0.f;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int c = t + i * kLanes;
      if (active && c < nvec) {
        xv[i] = xr[c];
        dv[i] = dr[c];
      }
    }
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int c = t + i * kLanes;
      if (!active || c >= nvec) continue;
      const float4 gm = g4[c];
      const T* d = reinterpret_cast<const T*>(&dv[i]);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float xh = (comp(xv[i], k) - mu) * rs, dyk = toFloat(d[k]), g = dyk * comp(gm, k);
        sg += g;
        sgx += g * xh;
        comp(accGamma[i], k) += dyk * xh;
        comp(accBeta[i], k) += dyk;
      }
    }
    teamSum<W>(sg, sgx, scratch);
    if (!active) continue;
    const float mg = sg * inv, mgx = sgx * inv;
    float4* dxr = reinterpret_cast<float4*>(dx) + static_cast<size_t>(row) * nvec;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int c = t + i * kLanes;
      if (c >= nvec) continue;
      const float4 gm = g4[c];
      const T* d = reinterpret_cast<const T*>(&dv[i]);
      float4 out;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float xh = (comp(xv[i], k) - mu) * rs, g = toFloat(d[k]) * comp(gm, k);
        comp(out, k) = rs * (g - mg - xh * mgx);
      }
      dxr[c] = out;
    }
  }

  // The block's teams summed in team order into this block's partial row.
  float4* part[2] = {reinterpret_cast<float4*>(dgammaPartial) + static_cast<size_t>(blockIdx.x) * nvec,
                     reinterpret_cast<float4*>(dbetaPartial) + static_cast<size_t>(blockIdx.x) * nvec};
#pragma unroll
  for (int which = 0; which < 2; ++which) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int c = t + i * kLanes;
      if (c < nvec) reduce[team * nvec + c] = which == 0 ? accGamma[i] : accBeta[i];
    }
    __syncthreads();
    for (int c = threadIdx.x; c < nvec; c += kThreads) {
      float4 s = reduce[c];
#pragma unroll
      for (int tm = 1; tm < kTeams; ++tm) {
        const float4 r = reduce[tm * nvec + c];
        s.x += r.x;
        s.y += r.y;
        s.z += r.z;
        s.w += r.w;
      }
      part[which][c] = s;
    }
    __syncthreads();  // before the buffer takes dbeta
  }
}

// out[c] = sum over partial rows p of partial[p][c], in a fixed order: thread row ty
// sums rows ty, ty + 32, ..., then ty = 0 adds the 32 sums in order. blockIdx.y picks
// dgamma (0) or dbeta (1).
__global__ void __launch_bounds__(32 * kReduceRows)
    reducePartials(const float* __restrict__ dgammaPartial, const float* __restrict__ dbetaPartial,
                   float* __restrict__ dgamma, float* __restrict__ dbeta, int partialRows, int cols) {
  __shared__ float sums[kReduceRows][33];
  const float* p = blockIdx.y == 0 ? dgammaPartial : dbetaPartial;
  float* out = blockIdx.y == 0 ? dgamma : dbeta;
  const int col = blockIdx.x * 32 + threadIdx.x;
  float s = 0.f;
#pragma unroll 4
  for (int r = threadIdx.y; r < partialRows; r += kReduceRows) s += p[static_cast<size_t>(r) * cols + col];
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0) return;
  float total = 0.f;
#pragma unroll
  for (int r = 0; r < kReduceRows; ++r) total += sums[r][threadIdx.x];
  out[col] = total;
}

int teamsPerBlock(int cols) { return cols <= 1024 ? kWarps : kWarps / 4; }

// Calls launch(IntC<W>, IntC<V>) with the team size and float4s per thread for cols
// (a multiple of 128 in [128, 4096]); V rounds up to a built size, the rest is masked.
template <typename Launch>
void withShape(int cols, Launch&& launch) {
  if (cols <= 1024) {
    switch (cols / 128) {
      case 1: return launch(IntC<1>{}, IntC<1>{});
      case 2: return launch(IntC<1>{}, IntC<2>{});
      case 3: return launch(IntC<1>{}, IntC<3>{});
      case 4: return launch(IntC<1>{}, IntC<4>{});
      case 5:
      case 6: return launch(IntC<1>{}, IntC<6>{});
      default: return launch(IntC<1>{}, IntC<8>{});
    }
  }
  const int perThread = (cols / 4 + 127) / 128;
  if (perThread <= 3) return launch(IntC<4>{}, IntC<3>{});
  if (perThread <= 4) return launch(IntC<4>{}, IntC<4>{});
  if (perThread <= 6) return launch(IntC<4>{}, IntC<6>{});
  return launch(IntC<4>{}, IntC<8>{});
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

WbStatus checkShape(const char* what, int rows, int cols) {
  if (rows < 0 || cols < 1)
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "%s: rows %d and cols %d must be >= 0 and >= 1", what, rows, cols);
  if (cols % WB_LAYERNORM_COLUMN_MULTIPLE != 0 || cols > WB_LAYERNORM_MAX_COLUMNS)
    return wbk::fail(WB_STATUS_UNSUPPORTED, "%s: cols %d must be a multiple of %d and at most %d", what, cols,
                     WB_LAYERNORM_COLUMN_MULTIPLE, WB_LAYERNORM_MAX_COLUMNS);
  return WB_STATUS_OK;
}

template <typename T>
void launchForward(const WbLayerNormFwdParams& p, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>((p.rows + teamsPerBlock(p.cols) - 1) / teamsPerBlock(p.cols));
  withShape(p.cols, [&](auto w, auto v) {
    layerNormForward<T, decltype(w)::value, decltype(v)::value><<<grid, kThreads, 0, stream>>>(
        p.x, p.gamma, p.beta, static_cast<T*>(p.y), p.mean, p.rstd, p.rows, p.cols, p.eps);
  });
}

template <typename T>
void launchBackward(const WbLayerNormBwdParams& p, int partialRows, cudaStream_t stream) {
  if (partialRows > 0) {
    withShape(p.cols, [&](auto w, auto v) {
      layerNormBackward<T, decltype(w)::value, decltype(v)::value><<<partialRows, kThreads, 0, stream>>>(
          static_cast<const T*>(p.dy), p.x, p.mean, p.rstd, p.gamma, p.dx, p.dgammaPartial, p.dbetaPartial, p.rows,
          p.cols);
    });
  }
  // With no rows the partial sum is empty and dgamma, dbeta come out 0.
  reducePartials<<<dim3(p.cols / 32, 2), dim3(32, kReduceRows), 0, stream>>>(p.dgammaPartial, p.dbetaPartial,
                                                                              p.dgamma, p.dbeta, partialRows, p.cols);
}

}  // namespace

extern "C" int wbLayerNormPartialRows(int rows, int cols) {
  if (rows <= 0 || cols < 1) return 0;
  const int teams = teamsPerBlock(cols);
  const int blocks = (rows + teams - 1) / teams;
  return blocks < kMaxBackwardBlocks ? blocks : kMaxBackwardBlocks;
}

extern "C" WbStatus wbLayerNormForward(const WbLayerNormFwdParams* p, cudaStream_t stream) {
  if (p == nullptr) return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "layernorm forward: params is NULL");
  if (p->x == nullptr || p->gamma == nullptr || p->beta == nullptr || p->y == nullptr || p->mean == nullptr ||
      p->rstd == nullptr)
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "layernorm forward: x, gamma, beta, y, mean and rstd must be set");
  if (const WbStatus s = checkShape("layernorm forward", p->rows, p->cols); s != WB_STATUS_OK) return s;
  if (!aligned16(p->x) || !aligned16(p->gamma) || !aligned16(p->beta) || !aligned16(p->y))
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "layernorm forward: x, gamma, beta and y must be 16-byte aligned");
  if (!(p->eps >= 0.f)) return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "layernorm forward: eps must be >= 0");
  if (p->rows == 0) return WB_STATUS_OK;
  if (p->dtype == WB_DTYPE_BF16)
    launchForward<__nv_bfloat16>(*p, stream);
  else if (p->dtype == WB_DTYPE_F16)
    launchForward<__half>(*p, stream);
  else
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "layernorm forward: dtype must be fp16 or bf16");
  return wbk::checkLaunch("layernorm forward launch");
}

extern "C" WbStatus wbLayerNormBackward(const WbLayerNormBwdParams* p, cudaStream_t stream) {
  if (p == nullptr) return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "layernorm backward: params is NULL");
  if (p->dy == nullptr || p->x == nullptr || p->mean == nullptr || p->rstd == nullptr || p->gamma == nullptr ||
      p->dx == nullptr || p->dgamma == nullptr || p->dbeta == nullptr)
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT,
                     "layernorm backward: dy, x, mean, rstd, gamma, dx, dgamma and dbeta must be set");
  if (const WbStatus s = checkShape("layernorm backward", p->rows, p->cols); s != WB_STATUS_OK) return s;
  const int partialRows = wbLayerNormPartialRows(p->rows, p->cols);
  if (partialRows > 0 && (p->dgammaPartial == nullptr || p->dbetaPartial == nullptr))
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "layernorm backward: dgammaPartial and dbetaPartial must be set");
  if (!aligned16(p->dy) || !aligned16(p->x) || !aligned16(p->gamma) || !aligned16(p->dx) ||
      !aligned16(p->dgammaPartial) || !aligned16(p->dbetaPartial))
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT,
                     "layernorm backward: dy, x, gamma, dx and the partial buffers must be 16-byte aligned");
  if (p->dtype == WB_DTYPE_BF16)
    launchBackward<__nv_bfloat16>(*p, partialRows, stream);
  else if (p->dtype == WB_DTYPE_F16)
    launchBackward<__half>(*p, partialRows, stream);
  else
    return wbk::fail(WB_STATUS_INVALID_ARGUMENT, "layernorm backward: dtype must be fp16 or bf16");
  return wbk::checkLaunch("layernorm backward launch");
}
