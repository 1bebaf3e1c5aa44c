// Micro-benchmark (issue 7, docs/PERF.md "Where the attention block's clusters land, and the LM
// head's weight stream"): GPT-2 medium's
// ln_f + int4 g128 LM head + argmax (50257 x 1024) as the decode step launches it (the
// tensor-core kernel, a resident grid looping over the rows), against other grid and warp
// shapes of the same kernel and a plain read of the same bytes, in CUDA graphs of 30
// launches over 3 weight sets (80 MB, more than L2) with programmatic launch; prints us
// per launch and the weight bytes' rate. The step's launch and the plain read also run
// over one weight set, which stays in L2: the head's time once its weights are there
// (session 18). Session 21: the head in row tiles (decode_lm_head_tiles.cuh) with its
// passes, warps and blocks an SM, and the packed argmax. Compiles kernels/decode/decode.cu into itself
// (MC_DECODE_SRC names another copy; with -DMC_PREFETCH=n and -I a copy of commit 0cac57a's
// kernels/decode, the LM head asks L2 for its rows n passes ahead). Not part of the build
// (from the repository root):
//   nvcc -O3 -std=c++17 -arch=sm_90a --expt-relaxed-constexpr -I. -o /tmp/lmh
//   scripts/microbench/decode_lm_head.cu && /tmp/lmh
#include "kernels/common/status.cu"
#ifndef MC_DECODE_SRC
#define MC_DECODE_SRC "kernels/decode/decode.cu"
#endif
#include MC_DECODE_SRC

#include <cstdio>
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "chain_support.cuh"
#include "decode_chain.cuh"
#include "decode_fill.cuh"

namespace {

constexpr int V = 50257, E = 1024, kSets = 3, kLaunches = 30, kCapacity = 1024;

// Every 16-byte word of [ptr, ptr + bytes) XORed into one value a thread (kept by a store
// no thread makes): the bytes' own floor, eight loads in flight a thread.
__global__ void readBytes(const uint4* __restrict__ p, size_t words, unsigned* sink) {
  unsigned acc = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 7 * stride < words; i += 8 * stride) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = __ldcs(p + i + u * stride);
#pragma unroll
    for (int u = 0; u < 8; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < words; i += stride) {
    const uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

}  // namespace

int main() {
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  std::vector<WbDecodeWeight> w(kSets);
  for (int s = 0; s < kSets; ++s) {
    uint8_t* q;
    __half* sc;
    CK(cudaMalloc(&q, (size_t)V * E / 2));
    CK(cudaMalloc(&sc, (size_t)V * E / 128 * 2));
    fillBytes<<<512, 256>>>(q, (size_t)V * E / 2, 300 + s);
    fillHalf<<<512, 256>>>(sc, (size_t)V * E / 128, 0.02f, 400 + s);
    w[s] = WbDecodeWeight{};
    w[s].qweight = q, w[s].scales = sc, w[s].groupSize = 128;
  }
  // The same head in row tiles (WbDecodeRowTiles): random words and scales, which time
  // like real ones (the kernel has no data-dependent path).
  const int tiles = (V + 15) / 16;
  std::vector<WbDecodeRowTiles> tw(kSets);
  for (int s = 0; s < kSets; ++s) {
    uint8_t *codes, *scales;
    CK(cudaMalloc(&codes, (size_t)tiles * 16 * E / 2));
    CK(cudaMalloc(&scales, (size_t)tiles * 16 * E / 128 * 2));
    fillBytes<<<512, 256>>>(codes, (size_t)tiles * 16 * E / 2, 500 + s);
    fillHalf<<<512, 256>>>(reinterpret_cast<__half*>(scales), (size_t)tiles * 16 * E / 128, 0.02f, 600 + s);
    tw[s] = WbDecodeRowTiles{};
    tw[s].codes = reinterpret_cast<const uint32_t*>(codes);
    tw[s].scales = reinterpret_cast<const uint32_t*>(scales);
  }
  unsigned long long* bestKey;
  CK(cudaMalloc(&bestKey, 8));
  CK(cudaMemset(bestKey, 0, 8));
  __half *x = nullptr, *lnw = nullptr, *lnb = nullptr, *logits = nullptr;
  CK(cudaMalloc(&x, E * 2));
  CK(cudaMalloc(&lnw, E * 2));
  CK(cudaMalloc(&lnb, E * 2));
  CK(cudaMalloc(&logits, (size_t)V * 2));
  fillHalf<<<4, 256>>>(x, E, 2.f, 1);
  fillHalf<<<4, 256>>>(lnw, E, 1.f, 2);
  fillHalf<<<4, 256>>>(lnb, E, 0.2f, 3);
  const int slots = 8 * sms;
  float* values;
  int* indices;
  unsigned *counter, *sink;
  int64_t *pos, *next, *tokens;
  CK(cudaMalloc(&values, slots * 4));
  CK(cudaMalloc(&indices, slots * 4));
  CK(cudaMalloc(&counter, 4));
  CK(cudaMalloc(&sink, 4));
  CK(cudaMalloc(&pos, 8));
  CK(cudaMalloc(&next, 8));
  CK(cudaMalloc(&tokens, kCapacity * 8));
  CK(cudaMemset(counter, 0, 4));
  CK(cudaMemset(pos, 0, 8));
  CK(cudaDeviceSynchronize());
  auto params = [&](int s) {
    WbDecodeLinearParams p = gemvParams(WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_ARGMAX, V, E, w[s], x, logits, nullptr, 0);
    setLayerNorm(p, lnw, lnb);
    p.int4Mma = 1;
    p.argmaxValues = values, p.argmaxIndices = indices, p.argmaxCounter = counter, p.argmaxSlots = slots;
    p.position = pos, p.capacity = kCapacity, p.nextToken = next, p.tokens = tokens;
#ifdef MC_PREFETCH  // a copy of the kernels with WbDecodeLinearParams::prefetchPasses (commit 0cac57a)
    p.prefetchPasses = MC_PREFETCH;
#endif
    return p;
  };
  const double bytes = (double)V * E / 2 + (double)V * E / 128 * 2;
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  auto timeIt = [&](const char* name, const std::function<void(int)>& launch, double moved = 0) {
    if (moved == 0) moved = bytes;
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    for (int l = 0; l < kLaunches; ++l) launch(l % kSets);
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const Timing t = timeGraph(ge, st);
    printf("%-44s %7.2f +- %.2f us a launch, %6.0f GB/s of weights\n", name, t.mean / kLaunches, t.std / kLaunches,
           moved / (t.mean / kLaunches * 1e3));
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
  };
  auto step = [&](int s) {
    WbDecodeLinearParams p = params(s);
    launched(wbDecodeLinear(&p, st), "LM head");
  };
  // A plain read of set s's codes by `per` blocks of 256 threads an SM.
  auto readCodes = [&](int s, int per) {
    readBytes<<<per * sms, 256, 0, st>>>(reinterpret_cast<const uint4*>(w[s].qweight), (size_t)V * E / 32, sink);
  };
  const double codeBytes = (double)V * E / 2;
  timeIt("as the step (wbDecodeLinear)", step);
  // The same launch over one weight set, which then stays in L2 (26.5 MB of 50)
  // (docs/PERF.md, "Four restructurings of the layer").
  timeIt("as the step, weights L2-resident (one set)", [&](int) { step(0); });
  // The same kernel with a given shape (rows a warp: kRows x kTiles), warps and blocks an SM.
  auto shaped = [&](auto kernel, int warps, int perSm) {
    return [=, &params](int s) {
      WbDecodeLinearParams p = params(s);
      const size_t smem = wbk::gemvSharedBytes<WB_DECODE_IN_LAYERNORM>(E, true);
      launched(wbk::launchGemv(reinterpret_cast<const void*>(kernel), perSm * sms, warps, smem, p, st, "LM head"), "shaped");
    };
  };
  constexpr int LN = WB_DECODE_IN_LAYERNORM, AM = WB_DECODE_OUT_ARGMAX;
  // Row tiles (session 21): the decoder's launch, then other passes and blocks an SM.
  auto tileStep = [&](int s, int perSm, bool packedArgmax) {
    WbDecodeLinearParams p = params(s);
    p.rowTiles = tw[s];
    p.rowTiles.blocksPerSm = perSm;
    if (packedArgmax) p.argmaxBest = bestKey;
    launched(wbDecodeLinear(&p, st), "LM head (row tiles)");
  };
  timeIt("row tiles as the decoder (pass 4, 3 blocks an SM)", [&](int s) { tileStep(s, 3, false); });
  timeIt("row tiles as the decoder, L2-resident (one set)", [&](int) { tileStep(0, 3, false); });
  timeIt("row tiles, 2 blocks an SM", [&](int s) { tileStep(s, 2, false); });
  timeIt("row tiles + packed argmax", [&](int s) { tileStep(s, 3, true); });
  timeIt("as the step + packed argmax", [&](int s) {
    WbDecodeLinearParams p = params(s);
    p.argmaxBest = bestKey;
    launched(wbDecodeLinear(&p, st), "LM head");
  });
  auto tileShaped = [&](auto kernel, int perSm, int warps = wbk::kTileWarps) {
    return [=, &params, &tw](int s) {
      WbDecodeLinearParams p = params(s);
      p.rowTiles = tw[s];
      p.argmaxBest = bestKey;
      const size_t smem = wbk::gemvSharedBytes<WB_DECODE_IN_LAYERNORM>(E, true);
      const int blocks = std::min((tiles + warps - 1) / warps, perSm * sms);
      launched(wbk::launchGemv(reinterpret_cast<const void*>(kernel), blocks, warps, smem, p, st, "tiles"),
               "row tiles, shaped");
    };
  };
  // Session 22 candidates (packed argmax): the same 24 warps an SM in other block shapes
  // (fewer blocks stage x and post to the argmax), and 32 warps an SM at 64 registers.
  timeIt("row tiles + packed, 12 warps, 2 blocks an SM", tileShaped(wbk::decodeLmHeadTilesKernel<LN, 16, 4, 2, 12>, 2, 12));
  timeIt("row tiles + packed, 4 warps, 6 blocks an SM", tileShaped(wbk::decodeLmHeadTilesKernel<LN, 16, 4, 6, 4>, 6, 4));
  timeIt("row tiles + packed, 8 warps, 4 blocks an SM, pass 2", tileShaped(wbk::decodeLmHeadTilesKernel<LN, 16, 2, 4>, 4));
  timeIt("row tiles, pass 2, 3 blocks an SM", tileShaped(wbk::decodeLmHeadTilesKernel<LN, 16, 2, 3>, 3));
  timeIt("row tiles, pass 4 (96 registers), 2 blocks an SM", tileShaped(wbk::decodeLmHeadTilesKernel<LN, 16, 4, 2>, 2));
  timeIt("row tiles, pass 8 (128 registers), 2 blocks an SM", tileShaped(wbk::decodeLmHeadTilesKernel<LN, 16, 8, 2>, 2));
  auto k221 = wbk::decodeLinearMmaKernel<LN, AM, 2, 2, 1>;
  auto k241 = wbk::decodeLinearMmaKernel<LN, AM, 2, 4, 1>;
  auto k211 = wbk::decodeLinearMmaKernel<LN, AM, 2, 1, 1>;
  for (int per : {1, 2, 3, 4}) {
    const std::string n = "4 rows a warp, 8 warps, " + std::to_string(per) + " blocks an SM";
    timeIt(n.c_str(), shaped(k221, 8, per));
  }
  timeIt("4 rows a warp, 4 warps, 4 blocks an SM", shaped(k221, 4, 4));
  timeIt("4 rows a warp, 12 warps, 1 block an SM", shaped(k221, 12, 1));
  timeIt("8 rows a warp, 8 warps, 1 block an SM", shaped(k241, 8, 1));
  timeIt("8 rows a warp, 8 warps, 2 blocks an SM", shaped(k241, 8, 2));
  timeIt("2 rows a warp, 8 warps, 2 blocks an SM", shaped(k211, 8, 2));
  timeIt("2 rows a warp, 8 warps, 4 blocks an SM", shaped(k211, 8, 4));
  timeIt("plain read of the codes, L2-resident (one set)", [&](int) { readCodes(0, 2); }, codeBytes);
  for (int per : {1, 2, 4}) {
    const std::string n = "plain read of the codes, " + std::to_string(per) + " x 256 threads an SM";
    timeIt(n.c_str(), [&, per](int s) { readCodes(s, per); }, codeBytes);
  }
  int regs[3] = {0, 0, 0};
  cudaFuncAttributes a;
  if (cudaFuncGetAttributes(&a, reinterpret_cast<const void*>(k221)) == cudaSuccess) regs[0] = a.numRegs;
  if (cudaFuncGetAttributes(&a, reinterpret_cast<const void*>(k241)) == cudaSuccess) regs[1] = a.numRegs;
  if (cudaFuncGetAttributes(&a, reinterpret_cast<const void*>(k211)) == cudaSuccess) regs[2] = a.numRegs;
  printf("registers: 4 rows a warp %d, 8 rows %d, 2 rows %d; %d SMs\n", regs[0], regs[1], regs[2], sms);
  return 0;
}
