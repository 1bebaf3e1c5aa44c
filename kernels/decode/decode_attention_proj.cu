// Attention + attn.c_proj + residual of one layer in one launch; see decode.h.
// Why: the per-phase step hands over from the attention kernel to the split combine +
// c_proj kernel through a whole-grid dependency (~0.9 us of hand-over plus an L2 round
// trip for the partials, docs/PERF.md). Here a cluster holds one block per head: each
// block attends for its head, pushes the head's output into every block of its cluster
// through distributed shared memory, and after one cluster barrier every block has the
// whole attention output for its share of c_proj's rows. Every cluster recomputes all
// heads (the cache is read once per cluster, from L2); in exchange no grid-wide
// dependency separates attention from c_proj, and the result is deterministic (each
// row is one block's dot product, no atomics).
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/common/status_internal.h"
#include "kernels/decode/decode.h"
#include "kernels/decode/decode_cluster.cuh"
#include "kernels/decode/decode_device.cuh"
#include "kernels/decode/decode_launch.h"

namespace wbk {
namespace {

namespace cg = cooperative_groups;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kHeadDim = 64;
constexpr int kTileKeys = kThreads / 8;  // eight threads a key, eight dims each
constexpr int kSmemTilesMax = 8;         // tiles staged in shared memory before the wait (64 KB); later ones from L2
constexpr int kMaxHeads = 16;            // the largest (non-portable) cluster on sm_90
constexpr int kMaxEmbd = kMaxHeads * kHeadDim;
constexpr int kMaxRowsPerWarp = 2;

// The cache's 32-key tiles, and how many of them a block stages in shared memory.
__host__ __device__ constexpr int tilesOf(int capacity) { return (capacity + kTileKeys - 1) / kTileKeys; }
// WB_ATTN_PROJ_SMEM_TILES (experiment): another cap than kSmemTilesMax.
int smemTilesOf(int capacity) {
  static const int cap = [] {
    const char* v = std::getenv("WB_ATTN_PROJ_SMEM_TILES");
    return v ? std::atoi(v) : kSmemTilesMax;
  }();
  return tilesOf(capacity) < cap ? tilesOf(capacity) : cap;
}

struct ProjLaunch {
  WbDecodeAttentionProjParams ap;
  int smemTiles;  // cache tiles staged in shared memory before the wait
};

struct ProjShared {
  float warpM[kWarps], warpL[kWarps], warpO[kWarps][kHeadDim];
};

__device__ __forceinline__ float dot8(const float* q, const uint4& k) {
  const uint32_t* ka = reinterpret_cast<const uint32_t*>(&k);
  float d = 0.f;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float2 kv = __half22float2(asHalf2(ka[e]));
    d = fmaf(q[2 * e], kv.x, d);
    d = fmaf(q[2 * e + 1], kv.y, d);
  }
  return d;
}

// kInt4: c_proj rows in the packed int4 layout (one 16-byte chunk of 32 inputs a lane),
// else fp16 rows (kV chunks of 8 inputs a lane). A warp owns rows rowStart + warp + 8i.
// kChunkTiles: tiles whose scores are computed together (independent loads and dots).
template <bool kInt4, int kV, int kRows, int kChunkTiles>
__global__ void __launch_bounds__(kThreads, 2) attentionProjKernel(const ProjLaunch launch) {
  const WbDecodeAttentionProjParams& ap = launch.ap;
  const WbDecodeAttentionParams& p = ap.attn;
  cg::cluster_group cluster = cg::this_cluster();
  const int clusterBlocks = static_cast<int>(cluster.num_blocks());
  const int head = static_cast<int>(cluster.block_rank());
  const int e = p.heads * kHeadDim, tid = static_cast<int>(threadIdx.x);
  const int warp = tid >> 5, lane = tid & 31;
  extern __shared__ float4 smem[];
  float* sx = reinterpret_cast<float*>(smem);               // fp16 weights: [E]
  uint4* sxq = reinterpret_cast<uint4*>(smem);              // int4 weights: [E / 8], stageInput's packed order
  __half* skv = reinterpret_cast<__half*>(sx + e);          // [tile][key][k, v][64]
  __shared__ ProjShared sh;
  clusterArriveRelaxed();  // waited for before the first remote store: the whole cluster has started

  // attn.c_proj rows of this block, their weights, bias and residual elements: constant
  // or (the residual) last written by the mlp.c_proj two kernels back, finished (unless
  // the previous kernel wrote it: residualFromPredecessor).
  const int blocks = static_cast<int>(gridDim.x);
  const int rowStart = static_cast<int>(static_cast<int64_t>(blockIdx.x) * e / blocks);
  const int rowEnd = static_cast<int>(static_cast<int64_t>(blockIdx.x + 1) * e / blocks);
  const int rowChunks = kInt4 ? e / 32 : e / 8;
  const int groups = kInt4 ? e / ap.proj.groupSize : 1;
  uint4 w[kRows][kV];
  __half scale[kRows];
  uint8_t zero[kRows];
  float bias[kRows], res[kRows];
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    const int row = rowStart + warp + kWarps * i;
    scale[i] = __float2half(0.f);
    zero[i] = 8;
    bias[i] = res[i] = 0.f;
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      const int c = lane + 32 * v;
      w[i][v] = make_uint4(0, 0, 0, 0);
      if (row >= rowEnd || c >= rowChunks) continue;
      if (kInt4) {
        w[i][v] = __ldcs(reinterpret_cast<const uint4*>(ap.proj.qweight + static_cast<int64_t>(row) * (e / 2)) + c);
        const int64_t g = static_cast<int64_t>(row) * groups + c * 32 / ap.proj.groupSize;
        scale[i] = static_cast<const __half*>(ap.proj.scales)[g];
        zero[i] = ap.proj.zeros ? ap.proj.zeros[g] : 8;
      } else {
        w[i][v] = __ldcs(reinterpret_cast<const uint4*>(static_cast<const __half*>(ap.proj.weight) +
                                                         static_cast<int64_t>(row) * e) + c);
      }
    }
    if (lane == 0 && row < rowEnd) {
      if (ap.proj.bias) bias[i] = __half2float(static_cast<const __half*>(ap.proj.bias)[row]);
      if (!ap.residualFromPredecessor) res[i] = __half2float(__ldcg(static_cast<const __half*>(ap.residual) + row));
    }
  }

  // This head's keys before the position (written by earlier steps; the position by
  // the previous step's argmax, two kernels back): tiles 0 .. smemTiles - 1 to shared
  // memory now. Thread (g, j8) copies, and later reads back, dims 8 j8 .. of key g of each.
  const int g = tid >> 3, j8 = tid & 7;
  const int smemTiles = launch.smemTiles;
  const int64_t pos = __ldcg(p.position);
  const int64_t headBase = static_cast<int64_t>(head) * p.capacity * kHeadDim + j8 * 8;
  for (int i = 0; i < smemTiles; ++i) {
    const int64_t t = static_cast<int64_t>(i) * kTileKeys + g;
    if (t >= pos) break;
    __half* dst = skv + ((i * kTileKeys + g) * 2) * kHeadDim + j8 * 8;
    cpAsync16(dst, static_cast<const __half*>(p.kCache) + headBase + t * kHeadDim);
    cpAsync16(dst + kHeadDim, static_cast<const __half*>(p.vCache) + headBase + t * kHeadDim);
  }
  waitForPrevious();
  releaseDependents();
  if (ap.residualFromPredecessor)
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int row = rowStart + warp + kWarps * i;
      if (lane == 0 && row < rowEnd) res[i] = __half2float(__ldcg(static_cast<const __half*>(ap.residual) + row));
    }

  // q, written by the c_attn kernel (as the key and value at the position).
  float qf[8];
  load8(static_cast<const __half*>(p.q) + head * kHeadDim + j8 * 8, qf);
  const float sc = p.scale * kLog2e;
#pragma unroll
  for (int x = 0; x < 8; ++x) qf[x] *= sc;
  const int tiles = pos < p.capacity ? static_cast<int>(pos / kTileKeys) + 1 : 0;
  cpAsyncWaitAll();  // each thread reads back only what it copied

  // An online softmax over chunks of kChunkTiles tiles: within a chunk the loads and dots
  // are independent, so a chunk costs about one tile's latency.
  float m = -FLT_MAX, l = 0.f, o[8];
#pragma unroll
  for (int x = 0; x < 8; ++x) o[x] = 0.f;
  for (int c0 = 0; c0 < tiles; c0 += kChunkTiles) {
    uint4 kr[kChunkTiles], vr[kChunkTiles];
    float s[kChunkTiles];
#pragma unroll
    for (int u = 0; u < kChunkTiles; ++u) {
      const int i = c0 + u;
      const int64_t t = static_cast<int64_t>(i) * kTileKeys + g;
      kr[u] = vr[u] = make_uint4(0, 0, 0, 0);
      if (t < pos && i < smemTiles) {
        const __half* src = skv + ((i * kTileKeys + g) * 2) * kHeadDim + j8 * 8;
        kr[u] = *reinterpret_cast<const uint4*>(src);
        vr[u] = *reinterpret_cast<const uint4*>(src + kHeadDim);
      } else if (t <= pos) {  // the position's key, just written by c_attn, or a tile past the staged ones
        kr[u] = __ldcg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.kCache) + headBase + t * kHeadDim));
        vr[u] = __ldcg(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.vCache) + headBase + t * kHeadDim));
      }
    }
    float mc = m;
#pragma unroll
    for (int u = 0; u < kChunkTiles; ++u) {
      float d = dot8(qf, kr[u]);
      d += __shfl_xor_sync(0xffffffffu, d, 1);
      d += __shfl_xor_sync(0xffffffffu, d, 2);
      d += __shfl_xor_sync(0xffffffffu, d, 4);
      const int64_t t = static_cast<int64_t>(c0 + u) * kTileKeys + g;
      s[u] = t <= pos ? d : -FLT_MAX;
      mc = fmaxf(mc, s[u]);
    }
    if (mc == -FLT_MAX) continue;  // no visible key of this thread's in the chunk
    const float a = exp2f(m - mc);  // 0 while m = -FLT_MAX
    l *= a;
#pragma unroll
    for (int x = 0; x < 8; ++x) o[x] *= a;
#pragma unroll
    for (int u = 0; u < kChunkTiles; ++u) {
      if (s[u] == -FLT_MAX) continue;
      const float pr = exp2f(s[u] - mc);
      l += pr;
      const uint32_t* va = reinterpret_cast<const uint32_t*>(&vr[u]);
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const float2 vv = __half22float2(asHalf2(va[x]));
        o[2 * x] = fmaf(pr, vv.x, o[2 * x]);
        o[2 * x + 1] = fmaf(pr, vv.y, o[2 * x + 1]);
      }
    }
    m = mc;
  }
  // The warp's four keys (lanes 8 apart), then the block's eight warps.
  storeWarpSoftmax(m, l, o, sh.warpM, sh.warpL, sh.warpO, warp, lane);
  __syncthreads();
  clusterWait();  // every block of the cluster has started: remote stores are safe
  if (tid < kHeadDim) {
    float hm = -FLT_MAX, hl = 0.f, ho = 0.f;
#pragma unroll
    for (int w2 = 0; w2 < kWarps; ++w2) mergeSoftmax(hm, hl, &ho, sh.warpM[w2], sh.warpL[w2], &sh.warpO[w2][tid], 1);
    const float out = hl > 0.f ? roundHalf(ho / hl) : 0.f;  // hl > 0 whenever the position is in the cache
    if (kInt4) {
      // Lanes 8c .. 8c + 7 hold chunk c of the head's output: lane 8c packs it.
      float f[8];
#pragma unroll
      for (int x = 0; x < 8; ++x) f[x] = __shfl_sync(0xffffffffu, out, (lane & ~7) + x);
      if ((lane & 7) == 0) {
        const int kc = head * 8 + (tid >> 3), chunks32 = e / 32;
        const uint4 packed = packInt4Order(f);
        for (int r = 0; r < clusterBlocks; ++r)
          cluster.map_shared_rank(sxq, r)[(kc & 3) * chunks32 + (kc >> 2)] = packed;
      }
    } else {
      // Lanes 4c .. 4c + 3 hold dims 4c .. 4c + 3: lane 4c stores them as one float4.
      float4 f;
      f.x = out;
      f.y = __shfl_down_sync(0xffffffffu, out, 1);
      f.z = __shfl_down_sync(0xffffffffu, out, 2);
      f.w = __shfl_down_sync(0xffffffffu, out, 3);
      if ((lane & 3) == 0)
        for (int r = 0; r < clusterBlocks; ++r)
          reinterpret_cast<float4*>(cluster.map_shared_rank(sx, r) + head * kHeadDim)[tid >> 2] = f;
    }
  }
  clusterArrive();
  clusterWait();

  // attn.c_proj + bias + residual for this block's rows, as the per-phase RESIDUAL epilogue rounds.
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
    const int row = rowStart + warp + kWarps * i;
    if (row >= rowEnd) break;  // uniform over the warp
    float acc = 0.f;
#pragma unroll
    for (int v = 0; v < kV; ++v) {
      const int c = lane + 32 * v;
      if (c >= rowChunks) continue;
      if (kInt4) {
        const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(zero[i]));
        acc = fmaf(dotInt4Chunk(w[i][v], zz, sxq, e / 32, c), __half2float(scale[i]), acc);
      } else {
        acc = dotFp16Chunk(w[i][v], sx + c * 8, acc);
      }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) {
      const __half out = __float2half_rn(acc + bias[i]);
      static_cast<__half*>(ap.residual)[row] = __float2half_rn(res[i] + __half2float(out));
    }
  }
}

size_t smemBytes(int heads, int capacity) {
  return static_cast<size_t>(heads) * kHeadDim * sizeof(float) +
         static_cast<size_t>(smemTilesOf(capacity)) * kTileKeys * 2 * kHeadDim * sizeof(__half);
}

// Clusters of `heads` blocks that can be resident at once (cudaOccupancyMaxActiveClusters,
// cached per kernel, block shared memory and cluster size), so that none waits for a second wave.
int residentClusters(const void* kernel, size_t smem, int heads, int carveout) {
  static std::mutex mu;
  static std::map<std::tuple<const void*, size_t, int, int>, int> cache;
  const std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(kernel, smem, heads, carveout);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  int dev = 0, sms = 132;
  if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(heads * (sms / heads));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(heads);
  attr[0].val.clusterDim.y = attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) != cudaSuccess || clusters < 1) {
    cudaGetLastError();
    clusters = 1;
  }
  clusters = clusters < sms / heads ? clusters : (sms / heads > 0 ? sms / heads : 1);
  cache[key] = clusters;
  return clusters;
}

// The kernel's attributes: dynamic shared memory, clusters of more than 8 blocks, carveout.
template <bool kInt4, int kV, int kRows, int kChunk>
WbStatus prepareKernel(const WbDecodeAttentionParams& p, size_t smem) {
  auto kernel = attentionProjKernel<kInt4, kV, kRows, kChunk>;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) != cudaSuccess ||
      (p.heads > 8 && cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) ||
      (p.sharedCarveout > 0 &&
       cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, p.sharedCarveout) != cudaSuccess))
    return checkLaunch("decode attention + c_proj: cudaFuncSetAttribute");
  return WB_STATUS_OK;
}

template <bool kInt4, int kV, int kRows, int kChunk>
WbStatus launchProj(const WbDecodeAttentionProjParams& ap, int clusters, cudaStream_t stream) {
  const WbDecodeAttentionParams& p = ap.attn;
  const size_t smem = smemBytes(p.heads, p.capacity);
  if (WbStatus s = prepareKernel<kInt4, kV, kRows, kChunk>(p, smem); s != WB_STATUS_OK) return s;
  const void* k = reinterpret_cast<const void*>(attentionProjKernel<kInt4, kV, kRows, kChunk>);
  const int blocks = clusters * p.heads;
  ProjLaunch launch{ap, smemTilesOf(p.capacity)};
  static bool told = false;
  if (!told && std::getenv("WB_ATTN_PROJ_VERBOSE")) {
    told = true;
    std::fprintf(stderr, "attention + c_proj: %d clusters of %d blocks, %d rows a warp, %zu B shared, %d staged tiles, %d a chunk\n",
                 clusters, p.heads, kRows, smem, launch.smemTiles, kChunk);
  }
  return launchDecodeKernel(k, dim3(blocks), dim3(kThreads), smem, p.programmaticLaunch != 0, p.sharedCarveout, stream,
                            "decode attention + c_proj launch", &launch, p.heads);
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

WbStatus checkProj(const WbDecodeAttentionProjParams* params) {
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention + c_proj: params is NULL");
  const WbDecodeAttentionParams& p = params->attn;
  const WbDecodeWeight& w = params->proj;
  if (p.headDim != kHeadDim || p.heads < 1 || p.heads > kMaxHeads)
    return fail(WB_STATUS_UNSUPPORTED, "decode attention + c_proj: needs head dim 64 and 1..%d heads (got %d heads of %d)",
                kMaxHeads, p.heads, p.headDim);
  if (p.capacity < 1) return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention + c_proj: capacity %d", p.capacity);
  if (p.sharedCarveout < 0 || p.sharedCarveout > 100)
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "decode attention + c_proj: sharedCarveout %d is not 0 (no request) or 1..100 percent", p.sharedCarveout);
  if (!p.q || !p.kCache || !p.vCache || !p.position || !params->residual || !aligned16(p.q) || !aligned16(p.kCache) ||
      !aligned16(p.vCache))
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "decode attention + c_proj: needs q and the caches (16-byte aligned), the position and the residual");
  if ((w.weight == nullptr) == (w.qweight == nullptr) || !aligned16(w.weight ? w.weight : w.qweight))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode attention + c_proj: give exactly one c_proj weight, 16-byte aligned");
  const int e = p.heads * kHeadDim, gs = w.groupSize;
  if (w.qweight && (!w.scales || (gs != 32 && gs != 64 && gs != 128) || e % gs != 0))
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "decode attention + c_proj: int4 needs scales and a group size of 32, 64 or 128 dividing E");
  return WB_STATUS_OK;
}

}  // namespace
}  // namespace wbk

extern "C" int wbDecodeAttentionProjSupported(int heads, int capacity) {
  using namespace wbk;
  if (heads < 1 || heads > kMaxHeads || capacity < 1) return 0;
  int dev = 0, major = 0, cluster = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&cluster, cudaDevAttrClusterLaunch, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return major >= 9 && cluster != 0;
}

extern "C" WbStatus wbDecodeAttentionProj(const WbDecodeAttentionProjParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (WbStatus s = checkProj(params); s != WB_STATUS_OK) return s;
  if (!wbDecodeAttentionProjSupported(params->attn.heads, params->attn.capacity))
    return fail(WB_STATUS_UNSUPPORTED, "decode attention + c_proj: this device has no thread block clusters (sm_90+)");
  static_assert(kMaxEmbd / 8 / 32 == 4 && kMaxEmbd / 32 / 32 == 1, "kV covers E <= 1024");
  const WbDecodeAttentionParams& p = params->attn;
  const bool int4 = params->proj.qweight != nullptr;
  static const int chunk = [] {  // WB_ATTN_PROJ_CHUNK (experiment): 2 or 4 tiles a chunk
    const char* v = std::getenv("WB_ATTN_PROJ_CHUNK");
    return v && std::atoi(v) == 2 ? 2 : 4;
  }();
  // Resident clusters as the one-row-a-warp kernel sees them; two rows a warp where
  // that leaves a block more than eight rows.
  const size_t smem = smemBytes(p.heads, p.capacity);
  if (WbStatus s = int4 ? prepareKernel<true, 1, 1, 4>(p, smem) : prepareKernel<false, 4, 1, 4>(p, smem);
      s != WB_STATUS_OK)
    return s;
  const void* one = int4 ? reinterpret_cast<const void*>(attentionProjKernel<true, 1, 1, 4>)
                         : reinterpret_cast<const void*>(attentionProjKernel<false, 4, 1, 4>);
  const int clusters = residentClusters(one, smem, p.heads, p.sharedCarveout);
  const int e = p.heads * kHeadDim, rows = (e + clusters * p.heads - 1) / (clusters * p.heads);
  if (rows <= kWarps) {
    if (chunk == 2)
      return int4 ? launchProj<true, 1, 1, 2>(*params, clusters, stream) : launchProj<false, 4, 1, 2>(*params, clusters, stream);
    return int4 ? launchProj<true, 1, 1, 4>(*params, clusters, stream) : launchProj<false, 4, 1, 4>(*params, clusters, stream);
  }
  if (rows <= kWarps * kMaxRowsPerWarp) {
    if (chunk == 2)
      return int4 ? launchProj<true, 1, 2, 2>(*params, clusters, stream) : launchProj<false, 4, 2, 2>(*params, clusters, stream);
    return int4 ? launchProj<true, 1, 2, 4>(*params, clusters, stream) : launchProj<false, 4, 2, 4>(*params, clusters, stream);
  }
  return fail(WB_STATUS_UNSUPPORTED,
              "decode attention + c_proj: %d resident clusters of %d blocks are too few for %d rows", clusters, p.heads, e);
}
