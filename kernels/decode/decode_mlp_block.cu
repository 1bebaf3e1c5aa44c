// ln_2 + c_fc + GELU + mlp.c_proj of one layer in one launch; see decode.h.
// Why: batch-1 decode is bound by the dependent hand-overs between kernels (~2.8 us
// each on H100, docs/PERF.md), and the MLP needs only one of its two: c_proj is linear
// in the hidden vector, so a block that owns a slice of the hidden units can multiply
// its slice by the matching inputs of c_proj and add the products into the output
// with atomics, without waiting for the rest of the hidden vector. The c_proj weight is
// read by input (the Conv1D's own [inner, E] order), so a block's slice is one
// contiguous run of rows. Both weight slices are loaded into registers before the
// programmatic wait.
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>

#include "kernels/common/status_internal.h"
#include "kernels/decode/decode.h"
#include "kernels/decode/decode_device.cuh"
#include "kernels/decode/decode_launch.h"

namespace wbk {
namespace {

namespace cg = cooperative_groups;

constexpr int kMaxThreads = 512;
constexpr int kMaxWarps = kMaxThreads / 32;
constexpr int kFcRows = 2;      // c_fc rows (hidden units) a warp
constexpr int kRowLanes = 4;    // c_proj: lanes that split a unit's rows, reduced by shuffles
constexpr int kClusterBlocks = 8;
constexpr int kMaxEmbd = 1024;

// The launch shape for a model. c_proj: a lane owns 8 outputs ("a unit") of every
// fourth row of the block's slice; a warp holds 8 units, so the block is E/2 threads
// (one warp per 8 units) and the four lanes of a unit add their sums by shuffles.
struct MlpShape {
  int threads = 0, slice = 0, blocks = 0;
};

MlpShape mlpShape(int embd, int inner, int sms, int projRows) {
  MlpShape s;
  s.threads = embd / 2;
  // One slice a block and about one block an SM; a multiple of 8 hidden units.
  int slice = ((inner + sms - 1) / sms + 7) / 8 * 8;
  slice = std::min({slice, kFcRows * (s.threads / 32), kRowLanes * projRows});
  s.slice = slice;
  s.blocks = (inner + slice - 1) / slice;
  s.blocks = (s.blocks + kClusterBlocks - 1) / kClusterBlocks * kClusterBlocks;
  return s;
}

__device__ __forceinline__ void atomicAdd4(float* dst, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float4*>(dst), v);
#else
  atomicAdd(dst, v.x), atomicAdd(dst + 1, v.y), atomicAdd(dst + 2, v.z), atomicAdd(dst + 3, v.w);
#endif
}

// kCluster: the 8 blocks of a cluster first add their sums through distributed shared
// memory, each then adds an eighth of the outputs into `out`: 8x fewer atomics an address.
template <int kIn, bool kInt4, int kFcChunks, int kProjRows, bool kCluster, int kPre>
__global__ void __launch_bounds__(kMaxThreads) decodeMlpBlockKernel(const WbDecodeMlpBlockParams mp) {
  const WbDecodeLinearParams& p = mp.fc;
  extern __shared__ float4 smem[];
  const int k = p.k, inner = p.n;
  float* sx = reinterpret_cast<float*>(smem);                            // [E]
  uint4* sxq = reinterpret_cast<uint4*>(sx + k);                         // int4: [E/8]
  __half* sln = reinterpret_cast<__half*>(sxq + (kInt4 ? k / 8 : 0));    // LayerNorm weight [E], bias [E]
  float* red = reinterpret_cast<float*>(sln + 2 * k);                     // [E]: the block's c_proj sums
  __shared__ float hidden[kFcRows * kMaxWarps];
  __shared__ float scratch[2 * kMaxWarps];

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  // mlpShape's slice from the launch shape (the host's may round down).
  const int slice = (inner + gridDim.x - 1) / gridDim.x;
  const int j0 = blockIdx.x * slice;
  const int rows = max(0, min(slice, inner - j0));
  const int fcChunks = kInt4 ? k / 32 : k / 8;  // 16-byte chunks of a c_fc row
  const int groups = kInt4 ? k / p.weight.groupSize : 1;

  // c_fc: warp w owns the slice's rows w and w + warps.
  uint4 fw[kFcRows][kFcChunks];
  __half fs[kFcRows];
  uint8_t fz[kFcRows];
  float fb[kFcRows];
  auto loadFc = [&](int r) {
    const int row = warp + r * warps;
    fs[r] = __float2half(0.f);
    fz[r] = 8;
    fb[r] = 0.f;
#pragma unroll
    for (int v = 0; v < kFcChunks; ++v) {
      const int c = lane + v * 32;
      fw[r][v] = make_uint4(0, 0, 0, 0);
      if (row < rows && c < fcChunks) {
        const int64_t j = j0 + row;
        if (kInt4) {
          fw[r][v] = __ldcs(reinterpret_cast<const uint4*>(p.weight.qweight + j * (k / 2)) + c);
          const int64_t g = j * groups + c * 32 / p.weight.groupSize;
          fs[r] = static_cast<const __half*>(p.weight.scales)[g];
          fz[r] = p.weight.zeros ? p.weight.zeros[g] : 8;
        } else {
          fw[r][v] = __ldcs(reinterpret_cast<const uint4*>(static_cast<const __half*>(p.weight.weight) + j * k) + c);
        }
      }
    }
    if (row < rows && lane == 0 && p.weight.bias) fb[r] = __half2float(static_cast<const __half*>(p.weight.bias)[j0 + row]);
  };
  // c_proj: lane l of warp w owns unit u = 8w + l/4 (outputs 8u .. 8u + 7) of rows
  // l%4, l%4 + 4, ...: a warp reads 128 contiguous bytes (fp16) of four rows at a time.
  const int u = warp * 8 + lane / kRowLanes, g0 = lane % kRowLanes;
  const WbDecodeWeight& w = mp.projT;
  uint4 pw[kInt4 ? 1 : kProjRows];     // fp16: 8 outputs a row
  uint32_t pq[kInt4 ? kProjRows : 1];  // int4: 8 nibbles a row
  // int4: the slice's rows lie in at most two groups (slice <= group size); their
  // scales and zero points for this lane's eight outputs.
  uint4 ps[2];
  uint2 pz[2];
  const int firstGroup = kInt4 ? j0 / w.groupSize : 0;
  auto loadProj = [&] {
#pragma unroll
    for (int i = 0; i < kProjRows; ++i) {
      const int row = g0 + i * kRowLanes;
      const bool valid = row < rows;
      const int64_t j = j0 + row;
      if (kInt4) {
        pq[i] = valid ? __ldcs(reinterpret_cast<const uint32_t*>(w.qweight + j * (k / 2)) + u) : 0u;
      } else {
        pw[i] = valid ? __ldcs(reinterpret_cast<const uint4*>(static_cast<const __half*>(w.weight) + j * k) + u)
                      : make_uint4(0, 0, 0, 0);
      }
    }
    if (kInt4) {
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        ps[t] = make_uint4(0, 0, 0, 0);
        pz[t] = make_uint2(0x08080808u, 0x08080808u);
        const int gi = firstGroup + t;
        if (gi * w.groupSize < j0 + rows) {
          ps[t] = __ldg(reinterpret_cast<const uint4*>(static_cast<const __half*>(w.scales) + int64_t{gi} * k) + u);
          if (w.zeros) pz[t] = __ldg(reinterpret_cast<const uint2*>(w.zeros + int64_t{gi} * k) + u);
        }
      }
    }
  };
  // Which weights are fetched before the programmatic wait (kPre, see mlpPrefetch):
  // all of them keep up to ~72 KB a block in flight beside the previous kernel.
  loadFc(0);
  if (kPre != 0 && kPre != 3)
#pragma unroll
    for (int r = 1; r < kFcRows; ++r) loadFc(r);
  if (kPre == 2) loadProj();
  for (int c = threadIdx.x; c < k / 8; c += blockDim.x) {
    reinterpret_cast<uint4*>(sln)[c] = __ldg(reinterpret_cast<const uint4*>(p.lnWeight) + c);
    reinterpret_cast<uint4*>(sln + k)[c] = __ldg(reinterpret_cast<const uint4*>(p.lnBias) + c);
  }

  waitForPrevious();
  releaseDependents();
  if (kPre == 3) {
#pragma unroll
    for (int r = 1; r < kFcRows; ++r) loadFc(r);
    loadProj();
  }
  stageInput<kIn, kInt4>(p, sx, sxq, sln, scratch);
  if (kPre == 0) {
#pragma unroll
    for (int r = 1; r < kFcRows; ++r) loadFc(r);
  }
  if (kPre == 0 || kPre == 1) loadProj();

  // Hidden units: fp16(gelu(fp16(x.W + b))), as the eager path rounds c_fc and GELU.
#pragma unroll
  for (int r = 0; r < kFcRows; ++r) {
    const int row = warp + r * warps;
    if (row >= rows) continue;  // warp-uniform
    float acc = 0.f;
#pragma unroll
    for (int v = 0; v < kFcChunks; ++v) {
      const int c = lane + v * 32;
      if (c >= fcChunks) continue;
      if (kInt4) {
        const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(fz[r]));
        acc = fmaf(dotInt4Chunk(fw[r][v], zz, sxq, k / 32, c), __half2float(fs[r]), acc);
      } else {
        acc = dotFp16Chunk(fw[r][v], sx + c * 8, acc);
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) hidden[row] = roundHalf(geluTanh(roundHalf(acc + fb[r])));
  }
  __syncthreads();

  // The slice's share of c_proj: this lane's rows, then the unit's four lanes by shuffles.
  float acc[8];
#pragma unroll
  for (int o = 0; o < 8; ++o) acc[o] = 0.f;
#pragma unroll
  for (int i = 0; i < kProjRows; ++i) {
    const int row = g0 + i * kRowLanes;
    if (row >= rows) break;
    const float h = hidden[row];
    if (kInt4) {
      // Selected, not indexed: a runtime index would move ps and pz to local memory.
      const bool second = (j0 + row) / w.groupSize != firstGroup;
      const uint4 sv = second ? ps[1] : ps[0];
      const uint2 zv = second ? pz[1] : pz[0];
      const uint32_t* sc = reinterpret_cast<const uint32_t*>(&sv);
      const uint8_t* z = reinterpret_cast<const uint8_t*>(&zv);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __half22float2(asHalf2(sc[e]));
        const float q0 = static_cast<float>((pq[i] >> (8 * e)) & 0xFu) - static_cast<float>(z[2 * e]);
        const float q1 = static_cast<float>((pq[i] >> (8 * e + 4)) & 0xFu) - static_cast<float>(z[2 * e + 1]);
        acc[2 * e] = fmaf(h * f.x, q0, acc[2 * e]);
        acc[2 * e + 1] = fmaf(h * f.y, q1, acc[2 * e + 1]);
      }
    } else {
      float f[8];
      unpack8(pw[i], f);
#pragma unroll
      for (int o = 0; o < 8; ++o) acc[o] = fmaf(h, f[o], acc[o]);
    }
  }
#pragma unroll
  for (int o = 0; o < 8; ++o) {
    acc[o] += __shfl_xor_sync(0xffffffffu, acc[o], 1);
    acc[o] += __shfl_xor_sync(0xffffffffu, acc[o], 2);
  }
  if constexpr (!kCluster) {
    if (g0 == 0) {
      atomicAdd4(mp.out + 8 * u, make_float4(acc[0], acc[1], acc[2], acc[3]));
      atomicAdd4(mp.out + 8 * u + 4, make_float4(acc[4], acc[5], acc[6], acc[7]));
    }
  } else {
    if (g0 == 0) {
      reinterpret_cast<float4*>(red + 8 * u)[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
      reinterpret_cast<float4*>(red + 8 * u)[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
    }
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();
    // Block r adds quads r, r + 8, ... of every block's sums.
    const int quads = k / 4, rank = static_cast<int>(cluster.block_rank());
    for (int qd = rank + kClusterBlocks * static_cast<int>(threadIdx.x); qd < quads;
         qd += kClusterBlocks * static_cast<int>(blockDim.x)) {
      float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int b = 0; b < kClusterBlocks; ++b) {
        const float4 v = reinterpret_cast<const float4*>(cluster.map_shared_rank(red, b))[qd];
        sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
      }
      atomicAdd4(mp.out + 4 * qd, sum);
    }
    cluster.sync();  // no block leaves while another reads its shared memory
  }
}

int smCount() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return 132;
  return sms;
}

// kProjRows: enough for the slice at E = 768 (6 rows a lane) or 1024 (8), no more:
// unused row registers would still be held.
template <int kIn, bool kInt4, int kFcChunks, int kProjRows>
WbStatus launchMlp(const WbDecodeMlpBlockParams& mp, cudaStream_t stream) {
  const WbDecodeLinearParams& p = mp.fc;
  const MlpShape s = mlpShape(p.k, p.n, smCount(), kProjRows);
  const size_t smem = static_cast<size_t>(p.k) * sizeof(float) * 2 + (kInt4 ? static_cast<size_t>(p.k) * 2 : 0) +
                      static_cast<size_t>(p.k) * 4;
  const bool cluster = mp.clusterSum != 0;
  static const int pre = [] {
    const char* e = std::getenv("WB_MLP_PREFETCH");
    return e ? std::atoi(e) : 2;
  }();
  auto kernel = cluster ? decodeMlpBlockKernel<kIn, kInt4, kFcChunks, kProjRows, true, 2>
                : pre == 0 ? decodeMlpBlockKernel<kIn, kInt4, kFcChunks, kProjRows, false, 0>
                : pre == 1 ? decodeMlpBlockKernel<kIn, kInt4, kFcChunks, kProjRows, false, 1>
                : pre == 3 ? decodeMlpBlockKernel<kIn, kInt4, kFcChunks, kProjRows, false, 3>
                           : decodeMlpBlockKernel<kIn, kInt4, kFcChunks, kProjRows, false, 2>;
  return launchDecodeKernel(reinterpret_cast<const void*>(kernel), dim3(s.blocks), dim3(s.threads), smem,
                            p.programmaticLaunch != 0, p.sharedCarveout, stream, "decode MLP block launch",
                            const_cast<WbDecodeMlpBlockParams*>(&mp), cluster ? kClusterBlocks : 0);
}

template <int kIn>
WbStatus launchInput(const WbDecodeMlpBlockParams& mp, cudaStream_t stream) {
  const bool narrow = mp.fc.k <= 768;
  if (mp.fc.weight.qweight) return narrow ? launchMlp<kIn, true, 1, 6>(mp, stream) : launchMlp<kIn, true, 1, 8>(mp, stream);
  return narrow ? launchMlp<kIn, false, 3, 6>(mp, stream) : launchMlp<kIn, false, 4, 8>(mp, stream);
}

bool alignedTo16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

WbStatus checkMlp(const WbDecodeMlpBlockParams* params) {
  if (!params) return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: params is NULL");
  const WbDecodeLinearParams& p = params->fc;
  const WbDecodeWeight& w = params->projT;
  if (p.input != WB_DECODE_IN_LAYERNORM && p.input != WB_DECODE_IN_HEADS)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: the input must be LayerNorm or heads + LayerNorm");
  if (!wbDecodeMlpBlockSupported(p.k, p.n))
    return fail(WB_STATUS_UNSUPPORTED, "decode MLP block: needs E a multiple of 256 up to %d and inner a multiple of 8 "
                "(got E %d, inner %d)", kMaxEmbd, p.k, p.n);
  if (p.sharedCarveout < 0 || p.sharedCarveout > 100)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: sharedCarveout %d is not 0 (no request) or 1..100 percent",
                p.sharedCarveout);
  const bool int4 = p.weight.qweight != nullptr;
  if ((p.weight.weight != nullptr) == int4 || (w.weight != nullptr) == (w.qweight != nullptr) ||
      (w.qweight != nullptr) != int4)
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: c_fc and c_proj need one weight each, both fp16 or both int4");
  if (!alignedTo16(p.weight.weight ? p.weight.weight : p.weight.qweight) ||
      !alignedTo16(w.weight ? w.weight : w.qweight))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: weights must be 16-byte aligned");
  if (int4) {
    const MlpShape s = mlpShape(p.k, p.n, smCount(), 6);
    for (const WbDecodeWeight* q : {&p.weight, &w}) {
      const int gs = q->groupSize;
      if (!q->scales || (gs != 32 && gs != 64 && gs != 128) || (q == &p.weight ? p.k : p.n) % gs != 0)
        return fail(WB_STATUS_INVALID_ARGUMENT,
                    "decode MLP block: int4 needs scales and a group size of 32, 64 or 128 dividing its inputs");
    }
    if (w.groupSize < s.slice)
      return fail(WB_STATUS_UNSUPPORTED, "decode MLP block: c_proj's group size %d is below the slice of %d rows",
                  w.groupSize, s.slice);
    if (!alignedTo16(w.scales) || (w.zeros && reinterpret_cast<uintptr_t>(w.zeros) % 8))
      return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: c_proj's scales (16-byte) and zeros (8-byte) alignment");
  }
  if (!params->out || !alignedTo16(params->out) || !p.x || !alignedTo16(p.x) || !p.lnWeight || !p.lnBias ||
      !alignedTo16(p.lnWeight) || !alignedTo16(p.lnBias))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: needs out, x and the LayerNorm (16-byte aligned)");
  if (params->clusterSum) {
    int dev = 0, cluster = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&cluster, cudaDevAttrClusterLaunch, dev) != cudaSuccess ||
        !cluster) {
      cudaGetLastError();
      return fail(WB_STATUS_UNSUPPORTED, "decode MLP block: clusterSum needs thread block clusters (sm_90+)");
    }
  }
  if (p.input == WB_DECODE_IN_HEADS &&
      (!p.headPartials || !alignedTo16(p.headPartials) || !p.headBias || !alignedTo16(p.headBias) || p.headCount < 1))
    return fail(WB_STATUS_INVALID_ARGUMENT, "decode MLP block: the heads input needs head partials, bias and count");
  return WB_STATUS_OK;
}

}  // namespace
}  // namespace wbk

extern "C" int wbDecodeMlpBlockSupported(int embd, int inner) {
  // E % 256: whole warps of 8 units (E/2 threads, at least 4 warps for the LayerNorm).
  return embd >= 256 && embd % 256 == 0 && embd <= wbk::kMaxEmbd && inner > 0 && inner % 8 == 0;
}

extern "C" WbStatus wbDecodeMlpBlock(const WbDecodeMlpBlockParams* params, cudaStream_t stream) {
  using namespace wbk;
  if (WbStatus s = checkMlp(params); s != WB_STATUS_OK) return s;
  return params->fc.input == WB_DECODE_IN_HEADS ? launchInput<WB_DECODE_IN_HEADS>(*params, stream)
                                                : launchInput<WB_DECODE_IN_LAYERNORM>(*params, stream);
}
