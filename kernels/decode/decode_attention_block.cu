// ln_1 + c_attn + attention + attn.c_proj of one layer in one launch; see decode.h.
// Why: batch-1 decode is bound by the dependent hand-overs between kernels (~2.8 us
// each on H100, docs/PERF.md), not by bandwidth, and the per-phase chain spends three
// of them (c_attn, attention, c_proj) where only one needs the whole grid: attention
// needs one head's q/k/v, and c_proj splits over heads into partials that the next
// kernel adds. A cluster of 8 blocks owns a head and trades its q/k/v dims and softmax
// partials through distributed shared memory: pushed with st.async into transaction
// barriers (or, built with WB_ATTN_BARRIER_EXCHANGE for comparison, stored under
// hardware cluster barriers; docs/PERF.md, "Pushes instead of cluster barriers"), the
// partials four floats a message and merged all at once (docs/PERF.md, "Merges without
// a chain of rescalings").
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <cfloat>

#include "kernels/common/status_internal.h"
#include "kernels/decode/decode.h"
#include "kernels/decode/decode_device.cuh"
#include "kernels/decode/decode_launch.h"

namespace wbk {
namespace {

namespace cg = cooperative_groups;

constexpr int kClusterBlocks = 8;
constexpr int kBlockWarps = 8;  // warp w of block r computes q, k and v of head dim 8r + w
constexpr int kBlockThreads = kBlockWarps * 32;
constexpr int kHeadDim = 64;
static_assert(kHeadDim == kClusterBlocks * kBlockWarps, "one warp per head dim");
constexpr int kTileKeys = kBlockThreads / 8;  // eight threads a key, eight dims each
constexpr int kMaxTiles = 8;                  // tiles per block: capacity <= 8 * 8 * 32
constexpr int kMaxCapacity = kMaxTiles * kClusterBlocks * kTileKeys;
constexpr int kMaxEmbd = 2048;

struct BlockShared {
  float q[kHeadDim], k[kHeadDim], v[kHeadDim];  // filled by the whole cluster's stores
  float warpM[kBlockWarps], warpL[kBlockWarps];
  alignas(16) float warpO[kBlockWarps][kHeadDim];  // then the head's output (see c_proj)
  float2 peerML[kClusterBlocks];  // every block's softmax partial (m, l) and o, stored by it
  alignas(16) float peerO[kClusterBlocks][kHeadDim];
  float scratch[2 * kBlockWarps];
  uint64_t qkvBar, mergeBar;  // transaction barriers of the two exchanges (push exchange only)
};

// Split cluster barrier: arrive, do independent work, then wait (release / acquire
// order the shared-memory traffic between the cluster's blocks).
__device__ __forceinline__ void clusterArrive() { asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void clusterArriveRelaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void clusterWait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }

// The exchanges as pushes that complete a transaction barrier in the receiving block
// (st.async ... mbarrier::complete_tx): a receiver waits only for the bytes it expects,
// not for every thread of the cluster, and a sender never waits for its stores.
#ifndef WB_ATTN_BARRIER_EXCHANGE
constexpr bool kPushExchange = true;
#else
constexpr bool kPushExchange = false;
#endif
constexpr unsigned kQkvBytes = 3 * kHeadDim * sizeof(float);                         // q, k, v of every dim
constexpr unsigned kMergeBytes = kClusterBlocks * (kHeadDim + 2) * sizeof(float);  // every block's o, m, l
__device__ __forceinline__ unsigned sharedAddr(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }
// Phase 0 of a barrier of one arrival (this one), complete once `bytes` have landed.
__device__ __forceinline__ void barrierExpect(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(sharedAddr(bar)) : "memory");
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(sharedAddr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void barrierWait(uint64_t* bar) {
  unsigned done = 0;
  do {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(sharedAddr(bar))
                 : "memory");
  } while (!done);
}
// The addresses of *at and *bar in block `rank` of the cluster (x and y).
__device__ __forceinline__ uint2 clusterAddrs(const void* at, const uint64_t* bar, unsigned rank) {
  uint2 a;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(a.x) : "r"(sharedAddr(at)), "r"(rank));
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(a.y) : "r"(sharedAddr(bar)), "r"(rank));
  return a;
}
// v into block `rank`'s copy of *at, counted on its copy of *bar; pushFloat2 / pushFloat4
// send two / four floats (8- / 16-byte aligned) as one message.
__device__ __forceinline__ void pushFloat(float* at, float v, uint64_t* bar, unsigned rank) {
  const uint2 a = clusterAddrs(at, bar, rank);
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];\n" ::"r"(a.x),
               "r"(__float_as_uint(v)), "r"(a.y)
               : "memory");
}
__device__ __forceinline__ void pushFloat2(void* at, float2 v, uint64_t* bar, unsigned rank) {
  const uint2 a = clusterAddrs(at, bar, rank);
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v2.b32 [%0], {%1, %2}, [%3];\n" ::"r"(a.x),
               "r"(__float_as_uint(v.x)), "r"(__float_as_uint(v.y)), "r"(a.y)
               : "memory");
}
__device__ __forceinline__ void pushFloat4(void* at, float4 v, uint64_t* bar, unsigned rank) {
  const uint2 a = clusterAddrs(at, bar, rank);
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];\n" ::"r"(a.x),
               "r"(__float_as_uint(v.x)), "r"(__float_as_uint(v.y)), "r"(__float_as_uint(v.z)),
               "r"(__float_as_uint(v.w)), "r"(a.y)
               : "memory");
}

__device__ __forceinline__ void cpAsync16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sharedAddr(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cpAsyncWaitAll() {
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
}

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Merges softmax partial (m2, l2, o2) into (m, l, o); a partial without keys has
// m = -FLT_MAX and l = o = 0, and weighs nothing.
__device__ __forceinline__ void mergeSoftmax(float& m, float& l, float* o, float m2, float l2, const float* o2, int n) {
  const float mn = fmaxf(m, m2);
  const float a = exp2f(m - mn), b = exp2f(m2 - mn);
  l = l * a + l2 * b;
  for (int i = 0; i < n; ++i) o[i] = o[i] * a + o2[i] * b;
  m = mn;
}

// Merges n softmax partials (m[i], l[i], o[i]) at once, each weighed by exp2(m[i] - max m):
// independent exponentials where folding them in one by one (mergeSoftmax) chains a
// rescaling per partial. A partial without keys weighs nothing unless none has keys, and
// then l = o = 0 as well.
template <int n, class M, class L, class O>
__device__ __forceinline__ void mergeSoftmaxAll(float& m, float& l, float& o, M mAt, L lAt, O oAt) {
  float mx = -FLT_MAX;
#pragma unroll
  for (int i = 0; i < n; ++i) mx = fmaxf(mx, mAt(i));
  float w[n];
#pragma unroll
  for (int i = 0; i < n; ++i) w[i] = exp2f(mAt(i) - mx);
  l = 0.f, o = 0.f;
#pragma unroll
  for (int i = 0; i < n; ++i) l = fmaf(lAt(i), w[i], l), o = fmaf(oAt(i), w[i], o);
  m = mx;
}

// kV: 16-byte weight chunks a lane holds per c_attn row, and c_attn.proj rows a lane
// holds (fp16: 8 lanes a 64-input row slice, 4 rows a pass; int4: 2 lanes, 16 rows).
// int4 up to E = 1024 is held to 80 registers (three blocks' worth), where it has
// always been: beside an MLP block during programmatic launch (docs/PERF.md, "Four
// restructurings"); the quad atomics below would otherwise take it to 97.
template <int kIn, bool kInt4, int kV>
__global__ void __launch_bounds__(kBlockThreads, kInt4 && kV == 1 ? 3 : 1) attentionBlockKernel(const WbDecodeAttentionBlockParams ab) {
  const WbDecodeLinearParams& p = ab.qkv;
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int head = static_cast<int>(blockIdx.x) / kClusterBlocks;
  const int e = p.k, tid = static_cast<int>(threadIdx.x);
  const int warp = tid >> 5, lane = tid & 31;
  const int dim = rank * kBlockWarps + warp;
  extern __shared__ float4 smem[];
  const StagedInput staged(smem, e, kInt4);
  __half* skv = staged.sln + 2 * e;  // [tile][key][k, v][64]
  __shared__ BlockShared sh;
  if (kPushExchange && threadIdx.x == 0) {
    barrierExpect(&sh.qkvBar, kQkvBytes);
    barrierExpect(&sh.mergeBar, kMergeBytes);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  clusterArriveRelaxed();  // waited for before the first remote store: every block of the cluster has started

  // Constant inputs first: c_attn rows q, k, v of `dim`, attn.c_proj's slice, LayerNorm.
  const int rows[3] = {head * kHeadDim + dim, e + head * kHeadDim + dim, 2 * e + head * kHeadDim + dim};
  const int rowChunks = kInt4 ? e / 32 : e / 8;
  const int groups = kInt4 ? e / p.weight.groupSize : 1;
  uint4 wq[3][kV];
  __half qScale[3][kV];
  uint8_t qZero[3][kV];
#pragma unroll
  for (int r = 0; r < 3; ++r)
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      const int c = lane + 32 * v;
      wq[r][v] = make_uint4(0, 0, 0, 0);
      if (c >= rowChunks) continue;
      if (kInt4) {
        wq[r][v] = __ldcs(reinterpret_cast<const uint4*>(p.weight.qweight + static_cast<int64_t>(rows[r]) * (e / 2)) + c);
        const int64_t g = static_cast<int64_t>(rows[r]) * groups + c * 32 / p.weight.groupSize;
        qScale[r][v] = static_cast<const __half*>(p.weight.scales)[g];
        qZero[r][v] = p.weight.zeros ? p.weight.zeros[g] : 8;
      } else {
        wq[r][v] = __ldcs(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.weight.weight) +
                                                          static_cast<int64_t>(rows[r]) * e) + c);
      }
    }
  float qkvBias[3];
#pragma unroll
  for (int r = 0; r < 3; ++r)
    qkvBias[r] = p.weight.bias ? __half2float(static_cast<const __half*>(p.weight.bias)[rows[r]]) : 0.f;

  // attn.c_proj: output rows rank * e/8 + warp * heads + i (e/8/8 = heads rows a warp),
  // inputs head * 64 .. + 64.
  constexpr int kProjLanes = kInt4 ? 2 : 8, kProjRowsPerPass = 32 / kProjLanes;
  const int warpRows = e / kHeadDim, projSub = lane % kProjLanes;
  const int projRow0 = rank * (e / kClusterBlocks) + warp * warpRows;
  uint4 wp[kV];
  __half pScale[kV];
  uint8_t pZero[kV];
#pragma unroll
  for (int v = 0; v < kV; ++v) {
    const int i = v * kProjRowsPerPass + lane / kProjLanes;
    wp[v] = make_uint4(0, 0, 0, 0);
    if (i >= warpRows) continue;
    const int64_t row = projRow0 + i;
    if (kInt4) {
      wp[v] = __ldcs(reinterpret_cast<const uint4*>(ab.proj.qweight) + row * (e / 32) + 2 * head + projSub);
      const int64_t g = row * groups + (head * kHeadDim + projSub * 32) / ab.proj.groupSize;
      pScale[v] = static_cast<const __half*>(ab.proj.scales)[g];
      pZero[v] = ab.proj.zeros ? ab.proj.zeros[g] : 8;
    } else {
      wp[v] = __ldcs(reinterpret_cast<const uint4*>(static_cast<const __half*>(ab.proj.weight) + row * e +
                                                     head * kHeadDim) + projSub);
    }
  }
  stageLayerNormParams(p, staged.sln);

  // This block's keys: tiles rank, rank + 8, ... of 32; thread (g, j) holds dims 8j..8j+7
  // of key g of each. Keys before the position were written by earlier steps.
  const int g = tid >> 3, j8 = tid & 7;
  const int tiles = ((p.capacity + kTileKeys - 1) / kTileKeys + kClusterBlocks - 1) / kClusterBlocks;
  auto fetchKeys = [&](int64_t pos) {
    for (int i = 0; i < tiles; ++i) {
      const int64_t t = static_cast<int64_t>(rank + kClusterBlocks * i) * kTileKeys + g;
      if (t >= pos) break;
      const int64_t src = (static_cast<int64_t>(head) * p.capacity + t) * kHeadDim + j8 * 8;
      __half* dst = skv + ((i * kTileKeys + g) * 2) * kHeadDim + j8 * 8;
      cpAsync16(dst, static_cast<const __half*>(p.kCache) + src);
      cpAsync16(dst + kHeadDim, static_cast<const __half*>(p.vCache) + src);
    }
  };
  // The position was advanced by the previous step's argmax: two or more kernels back
  // for a later layer (see waitForPrevious), the previous kernel for the first.
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
  stageInput<kIn, kInt4, true, kIn == WB_DECODE_IN_HEADS ? WB_DECODE_MLP_SUMS : 0>(p, staged.sx, staged.sxq, staged.sln, sh.scratch);

  // c_attn: this warp's q, k and v of `dim`, rounded to fp16 as the eager path.
  float acc[3] = {0.f, 0.f, 0.f};
#pragma unroll
  for (int r = 0; r < 3; ++r)
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      const int c = lane + 32 * v;
      if (c >= rowChunks) continue;
      if (kInt4) {
        const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(qZero[r][v]));
        acc[r] = fmaf(dotInt4Chunk(wq[r][v], zz, staged.sxq, e / 32, c), __half2float(qScale[r][v]), acc[r]);
      } else {
        acc[r] = dotFp16Chunk(wq[r][v], staged.sx + c * 8, acc[r]);
      }
    }
  float qkv[3];
#pragma unroll
  for (int r = 0; r < 3; ++r) qkv[r] = __half2float(__float2half_rn(warpSum(acc[r]) + qkvBias[r]));
  if (lane == 0 && pos < p.capacity) {
    const int64_t at = (static_cast<int64_t>(head) * p.capacity + pos) * kHeadDim + dim;
    static_cast<__half*>(p.kCache)[at] = __float2half_rn(qkv[1]);
    static_cast<__half*>(p.vCache)[at] = __float2half_rn(qkv[2]);
  }
  clusterWait();
  if (kPushExchange) {
    if (lane < kClusterBlocks) {
      pushFloat(&sh.q[dim], qkv[0], &sh.qkvBar, lane);
      pushFloat(&sh.k[dim], qkv[1], &sh.qkvBar, lane);
      pushFloat(&sh.v[dim], qkv[2], &sh.qkvBar, lane);
    }
    cpAsyncWaitAll();  // each thread reads back only the keys it copied
    barrierWait(&sh.qkvBar);
  } else {
    if (lane < kClusterBlocks) {
      BlockShared* to = cluster.map_shared_rank(&sh, lane);
      to->q[dim] = qkv[0];
      to->k[dim] = qkv[1];
      to->v[dim] = qkv[2];
    }
    cpAsyncWaitAll();
    clusterArrive();
    clusterWait();
  }

  // Attention over this block's keys: eight lanes a key, an online softmax over the
  // tiles, then the warp's four keys' partials, then the block's eight warps'.
  float qf[8], o[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) qf[i] = sh.q[j8 * 8 + i], o[i] = 0.f;
  const float scale = ab.scale * kLog2e;
  float m = -FLT_MAX, l = 0.f;
  for (int i = 0; i < tiles; ++i) {
    const int64_t t0 = static_cast<int64_t>(rank + kClusterBlocks * i) * kTileKeys;
    if (t0 > pos) break;  // uniform over the block: the shuffles below need every lane
    const int64_t t = t0 + g;
    float kf[8], vf[8];
    if (t == pos) {
#pragma unroll
      for (int x = 0; x < 8; ++x) kf[x] = sh.k[j8 * 8 + x], vf[x] = sh.v[j8 * 8 + x];
    } else {
      const __half* src = skv + ((i * kTileKeys + g) * 2) * kHeadDim + j8 * 8;
      uint4 kr = make_uint4(0, 0, 0, 0), vr = kr;
      if (t < pos) kr = *reinterpret_cast<const uint4*>(src), vr = *reinterpret_cast<const uint4*>(src + kHeadDim);
      const uint32_t* ka = reinterpret_cast<const uint32_t*>(&kr);
      const uint32_t* va = reinterpret_cast<const uint32_t*>(&vr);
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const float2 kk = __half22float2(asHalf2(ka[x])), vv = __half22float2(asHalf2(va[x]));
        kf[2 * x] = kk.x, kf[2 * x + 1] = kk.y, vf[2 * x] = vv.x, vf[2 * x + 1] = vv.y;
      }
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
  if (tid < kHeadDim) {
    float bm, bl, bo;
    mergeSoftmaxAll<kBlockWarps>(
        bm, bl, bo, [&](int w) { return sh.warpM[w]; }, [&](int w) { return sh.warpL[w]; },
        [&](int w) { return sh.warpO[w][tid]; });
    // Pushed to every block of the cluster (remote stores, no remote loads), so no block
    // reads another's memory afterwards. Pushes: in fours, each lane taking a quad of the
    // warp's 32 dims to two blocks (two messages a lane, not eight).
    if (kPushExchange) {
      const int quad = lane & 7, base = warp * 32 + quad * 4;
      float4 v;
      v.x = __shfl_sync(0xffffffffu, bo, quad * 4);
      v.y = __shfl_sync(0xffffffffu, bo, quad * 4 + 1);
      v.z = __shfl_sync(0xffffffffu, bo, quad * 4 + 2);
      v.w = __shfl_sync(0xffffffffu, bo, quad * 4 + 3);
#pragma unroll
      for (int half = 0; half < 2; ++half)
        pushFloat4(&sh.peerO[rank][base], v, &sh.mergeBar, (lane >> 3) + 4 * half);
      if (tid < kClusterBlocks) pushFloat2(&sh.peerML[rank], make_float2(bm, bl), &sh.mergeBar, tid);
    } else {
#pragma unroll
      for (int r = 0; r < kClusterBlocks; ++r) {
        BlockShared* to = cluster.map_shared_rank(&sh, r);
        to->peerO[rank][tid] = bo;
        if (tid == 0) to->peerML[rank] = make_float2(bm, bl);
      }
    }
  }
  if (kPushExchange) {
    barrierWait(&sh.mergeBar);
  } else {
    clusterArrive();
    clusterWait();
  }
  // The head's output into warpO[0] and, int4, packed into warpO[1]: free since the
  // pushes above, which came after their last reads, have all landed. (Every warp merging
  // the partials itself, with no block barrier before c_proj, was slower: docs/PERF.md.)
  if (tid < kHeadDim) {
    float hm, hl, ho;
    mergeSoftmaxAll<kClusterBlocks>(
        hm, hl, ho, [&](int r) { return sh.peerML[r].x; }, [&](int r) { return sh.peerML[r].y; },
        [&](int r) { return sh.peerO[r][tid]; });
    sh.warpO[0][tid] = roundHalf(ho / hl);  // hl > 0: the new key is always visible
  }
  __syncthreads();
  if (kInt4) {
    if (tid < kHeadDim / 8)
      reinterpret_cast<uint4*>(sh.warpO[1])[(tid & 3) * 2 + (tid >> 2)] = packInt4Order(sh.warpO[0] + tid * 8);
    __syncthreads();
  }
  const float* headOut = sh.warpO[0];
  const uint4* headOutQ = reinterpret_cast<const uint4*>(sh.warpO[1]);

  // attn.c_proj for this head's inputs: fp32 partials, no bias (added by the consumers).
#pragma unroll
  for (int v = 0; v < kV; ++v) {
    const int i = v * kProjRowsPerPass + lane / kProjLanes;
    float a = 0.f;
    if (i < warpRows) {
      if (kInt4) {
        const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(pZero[v]));
        a = dotInt4Chunk(wp[v], zz, headOutQ, 2, projSub) * __half2float(pScale[v]);
      } else {
        a = dotFp16Chunk(wp[v], headOut + projSub * 8, 0.f);
      }
    }
#pragma unroll
    for (int o2 = kProjLanes / 2; o2 > 0; o2 >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o2);
    if (ab.accumulate && warpRows % 4 == 0) {
      // Four adjacent rows (lanes kProjLanes apart) in one vector atomic: a quarter of
      // the atomics on the heads' shared sum, whose writers to an address serialise in L2.
      const float a1 = __shfl_down_sync(0xffffffffu, a, kProjLanes);
      const float a2 = __shfl_down_sync(0xffffffffu, a, 2 * kProjLanes);
      const float a3 = __shfl_down_sync(0xffffffffu, a, 3 * kProjLanes);
      if (lane % (4 * kProjLanes) == 0 && i < warpRows)
        atomicAdd(reinterpret_cast<float4*>(ab.headPartials + projRow0 + i), make_float4(a, a1, a2, a3));
    } else if (projSub == 0 && i < warpRows) {
      if (ab.accumulate)
        atomicAdd(ab.headPartials + projRow0 + i, a);
      else
        ab.headPartials[static_cast<int64_t>(head) * e + projRow0 + i] = a;
    }
  }
}

// A block's dynamic shared memory: x in fp32 (and packed for int4), the LayerNorm's
// weight and bias, and its tiles of the cached keys and values.
size_t blockDynamicBytes(int k, int capacity, bool int4) {
  const int tiles = ((capacity + kTileKeys - 1) / kTileKeys + kClusterBlocks - 1) / kClusterBlocks;
  return static_cast<size_t>(k) * (4 + (int4 ? 2 : 0) + 4) +
         static_cast<size_t>(tiles) * kTileKeys * 2 * kHeadDim * sizeof(__half);
}

template <int kIn, bool kInt4, int kV>
WbStatus launchBlock(const WbDecodeAttentionBlockParams& ab, cudaStream_t stream) {
  const WbDecodeLinearParams& p = ab.qkv;
  const size_t smem = blockDynamicBytes(p.k, p.capacity, kInt4);
  auto kernel = attentionBlockKernel<kIn, kInt4, kV>;
  if (smem > 48 * 1024 &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) != cudaSuccess)
    return checkLaunch("decode attention block: cudaFuncSetAttribute");
  return launchDecodeKernel(reinterpret_cast<const void*>(kernel), dim3(p.heads * kClusterBlocks), dim3(kBlockThreads),
                            smem, p.programmaticLaunch != 0, p.sharedCarveout, stream, "decode attention block launch",
                            const_cast<WbDecodeAttentionBlockParams*>(&ab), kClusterBlocks);
}

// kV: every c_attn row in 4 (fp16) or 1 (int4) chunks a lane, and c_proj's e/64 rows a
// warp in 4 or 1 passes, up to e = 1024 (GPT-2 medium); twice that up to 2048.
template <int kIn>
WbStatus launchInput(const WbDecodeAttentionBlockParams& ab, cudaStream_t stream) {
  const bool int4 = ab.qkv.weight.qweight != nullptr;
  if constexpr (kIn == WB_DECODE_IN_HEADS) {  // after an MLP block, which is int4 only
    if (!int4) return fail(WB_STATUS_UNSUPPORTED, "decode attention block: a heads input needs int4 weights");
    return ab.qkv.k <= 1024 ? launchBlock<kIn, true, 1>(ab, stream) : launchBlock<kIn, true, 2>(ab, stream);
  }
  if (ab.qkv.k <= 1024) return int4 ? launchBlock<kIn, true, 1>(ab, stream) : launchBlock<kIn, false, 4>(ab, stream);
  return int4 ? launchBlock<kIn, true, 2>(ab, stream) : launchBlock<kIn, false, 8>(ab, stream);
}

bool alignedTo16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

WbStatus checkBlock(const WbDecodeAttentionBlockParams* params) {
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention block: params is NULL");
  const WbDecodeLinearParams& p = params->qkv;
  const WbDecodeWeight& proj = params->proj;
  if (p.input != WB_DECODE_IN_LAYERNORM && p.input != WB_DECODE_IN_EMBED && p.input != WB_DECODE_IN_HEADS)
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "decode attention block: the input must be LayerNorm, embedding + LayerNorm or heads + LayerNorm");
  if (p.headDim != kHeadDim || p.heads < 1 || p.k != p.heads * kHeadDim || p.n != 3 * p.k || p.k > kMaxEmbd)
    return fail(WB_STATUS_UNSUPPORTED, "decode attention block: needs head dim 64, K = heads * 64 <= %d, N = 3K (got "
                "heads %d, head dim %d, K %d, N %d)", kMaxEmbd, p.heads, p.headDim, p.k, p.n);
  if (p.capacity < 1 || p.capacity > kMaxCapacity)
    return fail(WB_STATUS_UNSUPPORTED, "decode attention block: capacity %d is not in 1..%d", p.capacity, kMaxCapacity);
  if (p.sharedCarveout < 0 || p.sharedCarveout > 100)
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "decode attention block: sharedCarveout %d is not 0 (no request) or 1..100 percent", p.sharedCarveout);
  const bool int4 = p.weight.qweight != nullptr;
  if ((p.weight.weight != nullptr) == int4 || (proj.weight != nullptr) == (proj.qweight != nullptr) ||
      (proj.qweight != nullptr) != int4)
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "decode attention block: c_attn and c_proj need one weight each, both fp16 or both int4");
  for (const WbDecodeWeight* w : {&p.weight, &proj}) {
    if (!alignedTo16(w->weight ? w->weight : w->qweight))
      return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention block: weights must be 16-byte aligned");
    const int gs = w->groupSize;
    if (int4 && (!w->scales || (gs != 32 && gs != 64 && gs != 128) || p.k % gs != 0))
      return fail(WB_STATUS_INVALID_ARGUMENT,
                  "decode attention block: int4 needs scales and a group size of 32, 64 or 128 dividing K");
  }
  if (int4 && p.weight.groupSize != proj.groupSize)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention block: c_attn and c_proj need the same group size");
  if (!p.kCache || !p.vCache || !alignedTo16(p.kCache) || !alignedTo16(p.vCache) || !p.position ||
      !params->headPartials || !p.lnWeight || !p.lnBias || !alignedTo16(p.lnWeight) || !alignedTo16(p.lnBias))
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "decode attention block: needs the caches (16-byte aligned), position, head partials and LayerNorm");
  if (!alignedTo16(params->headPartials))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention block: head partials must be 16-byte aligned");
  if (p.input != WB_DECODE_IN_EMBED && (!p.x || !alignedTo16(p.x)))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention block: LayerNorm needs x (16-byte aligned)");
  if (p.input == WB_DECODE_IN_HEADS && (!p.headPartials || !alignedTo16(p.headPartials) || !p.headBias ||
                                        !alignedTo16(p.headBias) || p.headCount != WB_DECODE_MLP_SUMS || p.lnTwoPass ||
                                        !alignedTo16(p.residual)))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention block: a heads input is an MLP block's sum (headCount %d), "
                "needs head bias (16-byte aligned), an aligned residual and a one-pass LayerNorm", WB_DECODE_MLP_SUMS);
  if (p.input == WB_DECODE_IN_EMBED && (!p.wte || !p.wpe || !p.token || !p.residual))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention block: embedding needs wte, wpe, token and residual");
  return WB_STATUS_OK;
}

}  // namespace
}  // namespace wbk

extern "C" int wbDecodeAttentionBlockSupported(int heads, int capacity) {
  using namespace wbk;
  if (heads < 1 || heads * kHeadDim > kMaxEmbd || capacity < 1 || capacity > kMaxCapacity) return 0;
  int dev = 0, major = 0, cluster = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&cluster, cudaDevAttrClusterLaunch, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return major >= 9 && cluster != 0;
}

extern "C" long long wbDecodeAttentionBlockSharedBytes(int embd, int capacity, int int4) {
  using namespace wbk;
  if (embd < kHeadDim || embd % kHeadDim || embd > kMaxEmbd || capacity < 1 || capacity > kMaxCapacity) return -1;
  cudaFuncAttributes a{};
  const void* kernel = int4 ? reinterpret_cast<const void*>(attentionBlockKernel<WB_DECODE_IN_HEADS, true, 1>)
                            : reinterpret_cast<const void*>(attentionBlockKernel<WB_DECODE_IN_LAYERNORM, false, 4>);
  if (cudaFuncGetAttributes(&a, kernel) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return static_cast<long long>(blockDynamicBytes(embd, capacity, int4 != 0) + a.sharedSizeBytes);
}

extern "C" WbStatus wbDecodeAttentionBlock(const WbDecodeAttentionBlockParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (WbStatus s = checkBlock(params); s != WB_STATUS_OK) return s;
  if (!wbDecodeAttentionBlockSupported(params->qkv.heads, params->qkv.capacity))
    return fail(WB_STATUS_UNSUPPORTED, "decode attention block: this device has no thread block clusters (sm_90+)");
  switch (params->qkv.input) {
    case WB_DECODE_IN_EMBED: return launchInput<WB_DECODE_IN_EMBED>(*params, stream);
    case WB_DECODE_IN_HEADS: return launchInput<WB_DECODE_IN_HEADS>(*params, stream);
    default: return launchInput<WB_DECODE_IN_LAYERNORM>(*params, stream);
  }
}
