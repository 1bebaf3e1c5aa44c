// Persistent decode step; see decode_persistent.h.
// One block of 12 warps per SM (168 registers a thread; nvcc 13.0 reports 136-160 bytes
// of spills for the fp16 / int4 variants). A GEMV phase hands
// its rows out as units spread over the blocks first (unit u goes to block u % blocks);
// a unit is a row summed by `slices` consecutive warps that split K and add through
// shared memory (slices > 1 only when rows are too few to occupy the warps, or a row is
// too long for four 16-byte loads per lane). Each warp holds two units' weights in
// registers. The next phase's first two units are loaded as soon as a slot's last unit
// here is summed (warp 0: between arriving at the barrier and waiting), and the GEMV
// after that is asked of L2 while waiting, so the loads after a barrier hit L2.
// Attention runs three (head, split) items per block, one per 128-thread group, with
// named barriers. Activations cross blocks through L2 only (ld.cg): L1 is not coherent.
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>

#include "kernels/common/status_internal.h"
#include "kernels/decode/decode.h"
#include "kernels/decode/decode_device.cuh"
#include "kernels/decode/decode_persistent.h"

namespace wbk {
namespace {

constexpr int kThreads = 384, kWarps = kThreads / 32;  // 168 registers a thread
constexpr int kV = 4;      // 16-byte loads per lane per unit
constexpr int kDepth = 2;  // units in flight per warp
constexpr int kAttnQuarters = kThreads / 128;

// Slices per row: enough that a slice fits kV loads per lane, then more while the rows
// would leave half the grid's warps idle. Host and device must agree (setup checks it).
// A slice count always divides the block's warps, so a row's slices share one block.
__host__ __device__ inline int slicesFor(int n, int chunks, int warpsTotal) {
  int s = 1;
  while (chunks / s > 32 * kV && kWarps % (2 * s) == 0) s *= 2;
  while (kWarps % (2 * s) == 0 && static_cast<int64_t>(n) * s * 2 <= warpsTotal && chunks % (2 * s) == 0 &&
         chunks / (2 * s) >= 32)
    s *= 2;
  return s;
}

struct Work {
  int slices, sliceChunks, group, slice, unitStride, iters;
  __device__ int row(int j) const { return j * unitStride + group * static_cast<int>(gridDim.x) + blockIdx.x; }
};

__device__ __forceinline__ Work makeWork(int n, int k, bool int4) {
  const int chunks = k / (int4 ? 32 : 8);
  Work w;
  w.slices = slicesFor(n, chunks, static_cast<int>(gridDim.x) * kWarps);
  w.sliceChunks = chunks / w.slices;
  const int warp = threadIdx.x >> 5;
  w.group = warp / w.slices;
  w.slice = warp % w.slices;
  w.unitStride = static_cast<int>(gridDim.x) * (kWarps / w.slices);
  w.iters = (n + w.unitStride - 1) / w.unitStride;
  return w;
}

struct Frag {
  uint4 w[kDepth][kV];
  __half2 scaleZero[kDepth][kV];  // int4: (scale, 1024 + zero point)
  float bias[kDepth], res[kDepth];
};

// Unit j's weights (this lane's chunks of this warp's slice), bias and, for RESIDUAL
// outputs, the residual element (the caller guarantees nobody writes it meanwhile).
template <bool kInt4>
__device__ __forceinline__ void loadUnit(const WbDecodeLinearParams& p, const Work& wk, int j, Frag& f, int d,
                                         bool wantRes) {
  const int lane = threadIdx.x & 31, row = wk.row(j), k = p.k;
  const int groups = kInt4 ? k / p.weight.groupSize : 1;
  const int chunksPerGroup = kInt4 ? p.weight.groupSize / 32 : 1;
#pragma unroll
  for (int v = 0; v < kV; ++v) {
    const int cl = lane + 32 * v, c = wk.slice * wk.sliceChunks + cl;
    f.w[d][v] = make_uint4(0, 0, 0, 0);
    if (row < p.n && cl < wk.sliceChunks) {
      if (kInt4) {
        f.w[d][v] = __ldcs(
            reinterpret_cast<const uint4*>(p.weight.qweight + static_cast<int64_t>(row) * (k / 2)) + c);
        const int64_t g = static_cast<int64_t>(row) * groups + c / chunksPerGroup;
        f.scaleZero[d][v] = __halves2half2(
            static_cast<const __half*>(p.weight.scales)[g],
            __float2half_rn(1024.f + static_cast<float>(p.weight.zeros ? p.weight.zeros[g] : 8)));
      } else {
        f.w[d][v] = __ldcs(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.weight.weight) +
                                                          static_cast<int64_t>(row) * k) + c);
      }
    }
  }
  f.bias[d] = f.res[d] = 0.f;
  if (lane == 0 && wk.slice == 0 && row < p.n) {
    if (p.weight.bias) f.bias[d] = __half2float(static_cast<const __half*>(p.weight.bias)[row]);
    if (wantRes) f.res[d] = __half2float(__ldcg(static_cast<const __half*>(p.y) + row));
  }
}

// A phase's first two units (slots 0 and 1).
template <bool kInt4>
__device__ __forceinline__ void loadFirstUnits(const WbDecodeLinearParams& p, const Work& wk, Frag& f, bool wantRes) {
  loadUnit<kInt4>(p, wk, 0, f, 0, wantRes);
  if (wk.iters > 1) loadUnit<kInt4>(p, wk, 1, f, 1, wantRes);
}

// The LayerNorm parameters of a LAYERNORM / EMBED phase into shared memory.
__device__ __forceinline__ void stageNorm(const WbDecodeLinearParams& p, __half* sln) {
  if (p.input != WB_DECODE_IN_LAYERNORM && p.input != WB_DECODE_IN_EMBED) return;
  for (int c = threadIdx.x; c < p.k / 8; c += blockDim.x) {
    reinterpret_cast<uint4*>(sln)[c] = __ldg(reinterpret_cast<const uint4*>(p.lnWeight) + c);
    reinterpret_cast<uint4*>(sln + p.k)[c] = __ldg(reinterpret_cast<const uint4*>(p.lnBias) + c);
  }
}

// Asks L2 to fetch weight row `row` (and its int4 scales / zeros): no registers, no
// completion to wait for (the bulk-copy prefetch is asynchronous).
__device__ __forceinline__ void prefetchRowL2(const WbDecodeLinearParams& p, int row, bool int4) {
  if (row >= p.n) return;
  const uint32_t bytes = int4 ? p.k / 2 : p.k * 2;
  const char* base =
      int4 ? reinterpret_cast<const char*>(p.weight.qweight) : static_cast<const char*>(p.weight.weight);
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(base + static_cast<int64_t>(row) * bytes),
               "r"(bytes)
               : "memory");
  if (int4) {
    const int64_t g = static_cast<int64_t>(row) * (p.k / p.weight.groupSize);
    asm volatile("prefetch.global.L2 [%0];" ::"l"(static_cast<const __half*>(p.weight.scales) + g) : "memory");
    if (p.weight.zeros) asm volatile("prefetch.global.L2 [%0];" ::"l"(p.weight.zeros + g) : "memory");
  }
}

struct Scratch {
  float sum[kWarps];
  float red[2][kWarps];
  float bestValue[kWarps];
  int bestIndex[kWarps];
  bool lastBlock;
};

// Sums unit j (held in slot d) and applies the epilogue. Every thread of the block
// calls it for every j < iters (the slice reduction synchronises the block).
template <int kOut, bool kInt4>
__device__ __forceinline__ void sumUnit(const WbDecodeLinearParams& p, const Work& wk, int j, const Frag& f, int d,
                                        const float* sx, const uint4* sxq, Scratch& s, int64_t pos, float& best,
                                        int& bestIdx) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, row = wk.row(j);
  float acc = 0.f;
#pragma unroll
  for (int v = 0; v < kV; ++v) {
    const int cl = lane + 32 * v, c = wk.slice * wk.sliceChunks + cl;
    if (cl >= wk.sliceChunks) continue;
    if (kInt4)
      acc = fmaf(dotInt4Chunk(f.w[d][v], __high2half2(f.scaleZero[d][v]), sxq, p.k / 32, c),
                 __low2float(f.scaleZero[d][v]), acc);
    else
      acc = dotFp16Chunk(f.w[d][v], sx + c * 8, acc);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (wk.slices > 1) {
    // Alternate buffers by parity: a warp rewrites red[j & 1] only after the next
    // unit's __syncthreads, which every reader of this unit has passed.
    if (lane == 0) s.red[j & 1][warp] = acc;
    __syncthreads();
    if (wk.slice == 0 && lane == 0)
      for (int i = 1; i < wk.slices; ++i) acc += s.red[j & 1][warp + i];
  }
  if (lane == 0 && wk.slice == 0 && row < p.n)
    storeRow<kOut>(p, row, acc + f.bias[d], kOut == WB_DECODE_OUT_RESIDUAL, f.res[d], pos, best, bestIdx);
}

// After the barrier: stage the input vector, then sum every unit, two in flight. With
// `next` (same weight format), warps other than warp 0 load the next phase's first two
// units into each slot as soon as its last unit here is summed: the next phase's fetch
// then overlaps this phase's tail and the barrier. Warp 0 holds the barrier's fence,
// which would wait for its outstanding loads, so it loads after arriving (afterArrive).
template <int kIn, int kOut, bool kInt4>
__device__ __forceinline__ void runPhase(const WbDecodeLinearParams& p, const Work& wk, Frag& f, float* sx, uint4* sxq,
                                         const __half* sln, Scratch& s, int64_t pos, float& best, int& bestIdx,
                                         const WbDecodeLinearParams& pn, const Work& wkn, bool next, bool nextRes) {
  constexpr bool kRes = kOut == WB_DECODE_OUT_RESIDUAL;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const bool early = next && warp != 0;
  if (early && wk.iters == 1 && wkn.iters > 1) loadUnit<kInt4>(pn, wkn, 1, f, 1, nextRes);  // slot 1 unused here
  stageInput<kIn, kInt4, false>(p, sx, sxq, sln, s.sum);
  const bool stream = wk.iters > 4 && lane == 0 && wk.slice == 0 && warp != 0;  // the LM head: L2 runs ahead
  for (int j = 0; j < wk.iters; j += 2) {
    if (stream) {
      if (j + 4 < wk.iters) prefetchRowL2(p, wk.row(j + 4), kInt4);
      if (j + 5 < wk.iters) prefetchRowL2(p, wk.row(j + 5), kInt4);
    }
    sumUnit<kOut, kInt4>(p, wk, j, f, 0, sx, sxq, s, pos, best, bestIdx);
    if (j + 2 < wk.iters)
      loadUnit<kInt4>(p, wk, j + 2, f, 0, kRes);
    else if (early)
      loadUnit<kInt4>(pn, wkn, 0, f, 0, nextRes);
    if (j + 1 < wk.iters) {
      sumUnit<kOut, kInt4>(p, wk, j + 1, f, 1, sx, sxq, s, pos, best, bestIdx);
      if (j + 3 < wk.iters)
        loadUnit<kInt4>(p, wk, j + 3, f, 1, kRes);
      else if (early && wkn.iters > 1)
        loadUnit<kInt4>(pn, wkn, 1, f, 1, nextRes);
    }
  }
}

// Grid-wide barrier in two halves, so that a block can issue its next phase's loads
// between arriving and waiting. bar[0] counts arrivals and only grows: barrier i of a
// launch is passed when it reaches base + (i + 1) * blocks, where base (bar[1]) is what
// the previous launch left it at; the last block of each launch records the new base.
// Thread 0 arrives with a release add: it must have no loads in flight then (the
// release waits for them), which is why warp 0 loads its next weights after arriving.
struct GridBarrier {
  unsigned long long* bar;
  unsigned long long target;  // thread 0's: the count that ends the current barrier

  __device__ void arrive() {
    __syncthreads();
    if (threadIdx.x == 0) {
      target += gridDim.x;
      asm volatile("red.release.gpu.global.add.u64 [%0], 1;" ::"l"(bar) : "memory");
    }
  }
  __device__ void wait() const {
    if (threadIdx.x == 0) {
      unsigned long long seen;
      do {
        asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(seen) : "l"(bar) : "memory");
      } while (seen < target);
    }
    __syncthreads();
  }
};

__device__ __forceinline__ void namedBarrier(int id) {
  asm volatile("bar.sync %0, 128;" ::"r"(id) : "memory");
}

struct Step {  // what every phase's parameters share
  const WbDecodePersistentParams& P;
  int splits;
};

// The fields every GEMV phase sets; each phase then adds its own input (LayerNorm,
// embedding, attention combine) and output (KV cache, argmax) fields.
__device__ __forceinline__ WbDecodeLinearParams gemv(WbDecodeInput in, WbDecodeOutput out, int n, int k,
                                                     const WbDecodeWeight& w, void* y) {
  WbDecodeLinearParams p{};
  p.input = in;
  p.output = out;
  p.n = n;
  p.k = k;
  p.weight = w;
  p.y = y;
  return p;
}

__device__ __forceinline__ void setLayerNorm(WbDecodeLinearParams& p, const void* x, const void* w, const void* b,
                                             float eps) {
  p.x = x;
  p.lnWeight = w;
  p.lnBias = b;
  p.lnEps = eps;
}

__device__ WbDecodeLinearParams qkvParams(const Step& s, int l) {
  const WbDecodePersistentParams& P = s.P;
  const WbDecodeLayer& L = P.layers[l];
  WbDecodeLinearParams p = gemv(l == 0 ? WB_DECODE_IN_EMBED : WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_QKV,
                                3 * P.embd, P.embd, L.qkv, P.q);
  setLayerNorm(p, P.residual, L.ln1Weight, L.ln1Bias, P.lnEps);
  p.wte = P.wte;
  p.wpe = P.wpe;
  p.token = P.token;
  p.residual = P.residual;
  p.position = P.position;
  p.kCache = L.kCache;
  p.vCache = L.vCache;
  p.capacity = P.capacity;
  p.heads = P.heads;
  p.headDim = 64;
  return p;
}

__device__ WbDecodeLinearParams projParams(const Step& s, int l) {
  const WbDecodePersistentParams& P = s.P;
  WbDecodeLinearParams p =
      gemv(WB_DECODE_IN_ATTENTION, WB_DECODE_OUT_RESIDUAL, P.embd, P.embd, P.layers[l].proj, P.residual);
  p.attnO = P.partO;
  p.attnMl = P.partMl;
  p.attnSplits = s.splits;
  p.position = P.position;
  p.heads = P.heads;
  p.headDim = 64;
  return p;
}

__device__ WbDecodeLinearParams fcParams(const Step& s, int l) {
  const WbDecodePersistentParams& P = s.P;
  const WbDecodeLayer& L = P.layers[l];
  WbDecodeLinearParams p = gemv(WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_GELU, P.inner, P.embd, L.fc, P.hidden);
  setLayerNorm(p, P.residual, L.ln2Weight, L.ln2Bias, P.lnEps);
  return p;
}

__device__ WbDecodeLinearParams mprojParams(const Step& s, int l) {
  const WbDecodePersistentParams& P = s.P;
  WbDecodeLinearParams p =
      gemv(WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL, P.embd, P.inner, P.layers[l].mproj, P.residual);
  p.x = P.hidden;
  return p;
}

__device__ WbDecodeLinearParams headParams(const Step& s) {
  const WbDecodePersistentParams& P = s.P;
  WbDecodeLinearParams p = gemv(WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_ARGMAX, P.vocab, P.embd, P.head, P.logits);
  setLayerNorm(p, P.residual, P.lnfWeight, P.lnfBias, P.lnEps);
  p.position = P.position;
  p.capacity = P.capacity;
  p.argmaxValues = P.argmaxValues;
  p.argmaxIndices = P.argmaxIndices;
  p.argmaxCounter = P.argmaxCounter;
  p.argmaxSlots = P.argmaxSlots;
  p.nextToken = P.token;
  p.tokens = P.tokens;
  return p;
}

__device__ WbDecodeAttentionParams attentionParams(const Step& s, int l) {
  const WbDecodePersistentParams& P = s.P;
  const WbDecodeLayer& L = P.layers[l];
  WbDecodeAttentionParams a{};
  a.q = P.q;
  a.kCache = L.kCache;
  a.vCache = L.vCache;
  a.position = P.position;
  a.partO = P.partO;
  a.partMl = P.partMl;
  a.heads = P.heads;
  a.headDim = 64;
  a.capacity = P.capacity;
  a.scale = L.scale;
  return a;
}

// Items (head, split) for splits 0 .. pos / 64, item = split * heads + head, handed to
// the blocks' quarters so that the first items land on different SMs.
struct AttentionWork {
  int items, first, stride;
};
__device__ __forceinline__ AttentionWork attentionWork(const WbDecodeAttentionParams& a, int64_t pos, int splits) {
  AttentionWork w;
  const int needed = pos >= a.capacity ? 0 : min(static_cast<int>(pos / kSplitKeys) + 1, splits);
  w.items = needed * a.heads;
  w.first = static_cast<int>(threadIdx.x / 128) * static_cast<int>(gridDim.x) + blockIdx.x;
  w.stride = kAttnQuarters * static_cast<int>(gridDim.x);
  return w;
}

// GEMV g of the step: 4 l + (0 c_attn, 1 attn.c_proj, 2 c_fc, 3 mlp.c_proj); 4 L the LM head.
__device__ WbDecodeLinearParams gemvParams(const Step& s, int g) {
  if (g >= 4 * s.P.nLayer) return headParams(s);
  switch (g % 4) {
    case 0: return qkvParams(s, g / 4);
    case 1: return projParams(s, g / 4);
    case 2: return fcParams(s, g / 4);
    default: return mprojParams(s, g / 4);
  }
}
__device__ __forceinline__ bool gemvInt4(const Step& s, int g) {
  return g >= 4 * s.P.nLayer ? s.P.head.qweight != nullptr : s.P.layersInt4 != 0;
}
__device__ __forceinline__ bool gemvResidual(int g) { return g % 4 == 1 || g % 4 == 3; }

// While waiting at a barrier, threads 32.. ask L2 for this block's rows of GEMV g (two
// phases ahead of the one about to run), at most maxIters units per warp (the LM head
// is larger than L2). The register loads of that phase then hit L2.
__device__ void prefetchGemvL2(const Step& s, int g, int maxIters) {
  if (g > 4 * s.P.nLayer || threadIdx.x < 32) return;
  const WbDecodeLinearParams p = gemvParams(s, g);
  const bool q = gemvInt4(s, g);
  const int slices = slicesFor(p.n, p.k / (q ? 32 : 8), static_cast<int>(gridDim.x) * kWarps);
  const int groups = kWarps / slices, unitStride = static_cast<int>(gridDim.x) * groups;
  const int iters = min((p.n + unitStride - 1) / unitStride, maxIters);
  for (int i = static_cast<int>(threadIdx.x) - 32; i < iters * groups; i += static_cast<int>(blockDim.x) - 32)
    prefetchRowL2(p, (i / groups) * unitStride + (i % groups) * static_cast<int>(gridDim.x) + blockIdx.x, q);
}

// Between barrier.arrive() and wait(): GEMV g's first units where runPhase did not load
// them (warp 0 always; everyone when the formats differ or there was no GEMV before),
// its LayerNorm parameters, and (prefetchNext) the L2 prefetch of GEMV g + 1.
__device__ __forceinline__ void afterArrive(const Step& s, int g, const WbDecodeLinearParams& p, const Work& wk,
                                            Frag& f, __half* sln, bool loadedEarly, bool prefetchNext) {
  if ((threadIdx.x >> 5) == 0 || !loadedEarly) {
    if (gemvInt4(s, g))
      loadFirstUnits<true>(p, wk, f, gemvResidual(g));
    else
      loadFirstUnits<false>(p, wk, f, gemvResidual(g));
  }
  stageNorm(p, sln);
  if (prefetchNext) prefetchGemvL2(s, g + 1, 4);
}

// What a block carries from phase to phase.
struct BlockState {
  float* sx;     // [maxK] the staged input vector (fp16 weights)
  uint4* sxq;    // [maxK / 8] the same for int4 weights
  __half* sln;   // [2 * embd] LayerNorm weight and bias
  Scratch& scratch;
  int64_t pos;
  GridBarrier barrier;
  Frag f;
  float best = -FLT_MAX;  // the LM head's running argmax
  int bestIdx = 0x7fffffff;
};

// GEMV phase g (its first units already in registers), then GEMV g + 1 readied across the
// barrier: its first units (loaded during g's tail where the formats agree), LayerNorm
// parameters, and GEMV g + 2 asked of L2.
template <int kIn, int kOut, bool kInt4>
__device__ __forceinline__ void gemvThenNext(const Step& step, int g, WbDecodeLinearParams& p, Work& wk,
                                             BlockState& b) {
  const bool nextInt4 = gemvInt4(step, g + 1), sameFormat = nextInt4 == kInt4;
  {
    const WbDecodeLinearParams pn = gemvParams(step, g + 1);
    runPhase<kIn, kOut, kInt4>(p, wk, b.f, b.sx, b.sxq, b.sln, b.scratch, b.pos, b.best, b.bestIdx, pn,
                               makeWork(pn.n, pn.k, nextInt4), sameFormat, gemvResidual(g + 1));
  }
  p = gemvParams(step, g + 1);
  wk = makeWork(p.n, p.k, nextInt4);
  b.barrier.arrive();
  afterArrive(step, g + 1, p, wk, b.f, b.sln, sameFormat, true);
  b.barrier.wait();
}

template <bool kInt4Layers>
__global__ void __launch_bounds__(kThreads, 1) decodePersistentKernel(const WbDecodePersistentParams P) {
  extern __shared__ float4 smem[];
  const int maxK = max(P.embd, P.inner);
  __shared__ SplitShared attnShared[kAttnQuarters];
  __shared__ Scratch scratch;
  BlockState b{reinterpret_cast<float*>(smem), reinterpret_cast<uint4*>(reinterpret_cast<float*>(smem) + maxK),
               reinterpret_cast<__half*>(reinterpret_cast<uint4*>(reinterpret_cast<float*>(smem) + maxK) + maxK / 8),
               scratch,
               __ldcg(P.position),  // advanced only by the last block, after everyone's reads
               GridBarrier{P.barrier, __ldcg(P.barrier + 1)}};
  const Step step{P, (P.capacity + kSplitKeys - 1) / kSplitKeys};
  const int quarter = threadIdx.x / 128, tid = threadIdx.x % 128;
  const int head = 4 * P.nLayer;
  SplitKeys keys;

  WbDecodeLinearParams p = gemvParams(step, 0);
  Work wk = makeWork(p.n, p.k, kInt4Layers);
  afterArrive(step, 0, p, wk, b.f, b.sln, false, true);  // GEMV 0's units and LayerNorm; GEMV 1 to L2
  __syncthreads();
  // Each GEMV phase g: after it ends, GEMV g + 2 goes to L2 (and g + 1 to registers).
  // The next phase's parameters are rebuilt after runPhase rather than kept across it.
  for (int l = 0, g = 0; l < P.nLayer; ++l, g += 4) {
    // 1. (embedding +) ln_1 + c_attn: q to a buffer, k/v into the cache.
    if (l == 0)
      runPhase<WB_DECODE_IN_EMBED, WB_DECODE_OUT_QKV, kInt4Layers>(p, wk, b.f, b.sx, b.sxq, b.sln, scratch, b.pos,
                                                                   b.best, b.bestIdx, p, wk, false, false);
    else
      runPhase<WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_QKV, kInt4Layers>(p, wk, b.f, b.sx, b.sxq, b.sln, scratch, b.pos,
                                                                       b.best, b.bestIdx, p, wk, false, false);
    // 2. attention over the cache; the keys of earlier steps load while waiting.
    const WbDecodeAttentionParams a = attentionParams(step, l);
    const AttentionWork aw = attentionWork(a, b.pos, step.splits);
    b.barrier.arrive();
    if (aw.first < aw.items) fetchSplit(a, aw.first % a.heads, aw.first / a.heads, b.pos, tid, keys);
    prefetchGemvL2(step, g + 2, 4);
    b.barrier.wait();
    for (int item = aw.first; item < aw.items; item += aw.stride) {
      if (item != aw.first) fetchSplit(a, item % a.heads, item / a.heads, b.pos, tid, keys);
      attendSplit(a, item % a.heads, item / a.heads, b.pos, tid, keys, attnShared[quarter],
                  [quarter] { namedBarrier(quarter + 1); });
    }
    // 3. combine + attn.c_proj + residual (its units load after the attention).
    p = gemvParams(step, g + 1);
    wk = makeWork(p.n, p.k, kInt4Layers);
    b.barrier.arrive();
    afterArrive(step, g + 1, p, wk, b.f, b.sln, false, false);
    b.barrier.wait();
    gemvThenNext<WB_DECODE_IN_ATTENTION, WB_DECODE_OUT_RESIDUAL, kInt4Layers>(step, g + 1, p, wk, b);
    // 4. ln_2 + c_fc + GELU.
    gemvThenNext<WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_GELU, kInt4Layers>(step, g + 2, p, wk, b);
    // 5. mlp.c_proj + residual; then the next layer's c_attn (or the LM head) is readied.
    gemvThenNext<WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL, kInt4Layers>(step, g + 3, p, wk, b);
  }
  // ln_f + LM head + argmax; the last block feeds the token back and advances the position.
  if (gemvInt4(step, head))
    runPhase<WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_ARGMAX, true>(p, wk, b.f, b.sx, b.sxq, b.sln, scratch, b.pos, b.best,
                                                                 b.bestIdx, p, wk, false, false);
  else
    runPhase<WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_ARGMAX, false>(p, wk, b.f, b.sx, b.sxq, b.sln, scratch, b.pos,
                                                                  b.best, b.bestIdx, p, wk, false, false);
  argmaxFinish(p, b.best, b.bestIdx, scratch.bestValue, scratch.bestIndex, &scratch.lastBlock);
  // Every block has passed every barrier (it posted its argmax candidate after them).
  if (threadIdx.x == 0 && scratch.lastBlock) P.barrier[1] = b.barrier.target;
}

using KernelFn = void (*)(WbDecodePersistentParams);

KernelFn kernelFor(const WbDecodePersistentParams& p) {
  return p.layersInt4 ? decodePersistentKernel<true> : decodePersistentKernel<false>;
}

bool goodWeight(const WbDecodeWeight& w, bool int4) {
  if (int4)
    return w.qweight && !w.weight && w.scales && (w.groupSize == 32 || w.groupSize == 64 || w.groupSize == 128) &&
           reinterpret_cast<uintptr_t>(w.qweight) % 16 == 0;
  return w.weight && !w.qweight && reinterpret_cast<uintptr_t>(w.weight) % 16 == 0;
}

// Every GEMV's slices must split its row into whole chunks of at most kV per lane.
bool slicesFit(int n, int k, bool int4, int warpsTotal) {
  const int chunks = k / (int4 ? 32 : 8);
  const int s = slicesFor(n, chunks, warpsTotal);
  return chunks % s == 0 && chunks / s <= 32 * kV;
}

}  // namespace
}  // namespace wbk

extern "C" WbStatus wbDecodePersistentSetup(WbDecodePersistentParams* params) {
  using namespace wbk;
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "decode persistent: params is NULL");
  WbDecodePersistentParams& p = *params;
  if (!p.layers || p.nLayer < 1 || p.embd <= 0 || p.embd % 32 || p.inner <= 0 || p.inner % 32 || p.heads < 1 ||
      p.heads * 64 != p.embd || p.vocab < 1 || p.capacity < 1)
    return fail(WB_STATUS_UNSUPPORTED, "decode persistent: shapes (embd %d, inner %d, heads %d) need head dim 64",
                p.embd, p.inner, p.heads);
  if (!p.wte || !p.wpe || !p.lnfWeight || !p.lnfBias || !p.token || !p.position || !p.tokens || !p.residual || !p.q ||
      !p.hidden || !p.logits || !p.partO || !p.partMl || !p.argmaxValues || !p.argmaxIndices || !p.argmaxCounter ||
      !p.barrier)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode persistent: a pointer is NULL");
  if (!goodWeight(p.head, p.head.qweight != nullptr))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode persistent: the LM head weight is not a usable fp16 or int4 weight");
  int dev = 0, coop = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return checkLaunch("decode persistent: device attributes");
  if (!coop) return fail(WB_STATUS_UNSUPPORTED, "decode persistent: the device has no cooperative launch");
  const int maxK = std::max(p.embd, p.inner);
  p.sharedBytes = static_cast<size_t>(maxK) * 4 + static_cast<size_t>(maxK) * 2 + static_cast<size_t>(p.embd) * 4;
  const KernelFn kernel = kernelFor(p);
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(p.sharedBytes)) !=
      cudaSuccess)
    return checkLaunch("decode persistent: cudaFuncSetAttribute");
  int perSm = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, kThreads, p.sharedBytes) != cudaSuccess)
    return checkLaunch("decode persistent: occupancy");
  if (perSm < 1) return fail(WB_STATUS_UNSUPPORTED, "decode persistent: the kernel does not fit on an SM");
  p.blocks = sms;  // one per SM: more would add barrier arrivals, not bandwidth
  if (p.blocks > p.argmaxSlots)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode persistent: %d argmax slots for %d blocks", p.argmaxSlots, p.blocks);
  const int warpsTotal = p.blocks * kWarps;
  const bool q = p.layersInt4 != 0;
  if (!slicesFit(3 * p.embd, p.embd, q, warpsTotal) || !slicesFit(p.embd, p.embd, q, warpsTotal) ||
      !slicesFit(p.inner, p.embd, q, warpsTotal) || !slicesFit(p.embd, p.inner, q, warpsTotal) ||
      !slicesFit(p.vocab, p.embd, p.head.qweight != nullptr, warpsTotal))
    return fail(WB_STATUS_UNSUPPORTED, "decode persistent: widths %d / %d do not split into this grid's rows", p.embd,
                p.inner);
  return WB_STATUS_OK;
}

extern "C" WbStatus wbDecodePersistent(const WbDecodePersistentParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (!params || params->blocks < 1) return fail(WB_STATUS_INVALID_ARGUMENT, "decode persistent: call setup first");
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(params->blocks);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = params->sharedBytes;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;  // every block resident at once: the barriers need it
  attr[0].val.cooperative = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  void* args[] = {const_cast<WbDecodePersistentParams*>(params)};
  const cudaError_t err = cudaLaunchKernelExC(&cfg, reinterpret_cast<const void*>(kernelFor(*params)), args);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // a refused launch is not sticky: leave no error for the next caller
    return fail(WB_STATUS_CUDA_ERROR, "decode persistent launch: %s", cudaGetErrorString(err));
  }
  return checkLaunch("decode persistent launch");
}
