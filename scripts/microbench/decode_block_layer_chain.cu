// Micro-benchmark (issue 7, docs/PERF.md "Where an int4 decode kernel's time goes"): a
// CUDA graph of the int4 attention-block decode layer (ln_1 + c_attn + attention +
// attn.c_proj as one cluster launch with the heads summed by atomics, then LayerNorm of
// the residual plus those heads + c_fc + GELU, then mlp.c_proj + residual), GPT-2 medium
// shapes, int4 g128, 240 layers over 48 weight and KV-cache sets, every step at position
// argv[2] (default 144, the middle of perf decode's 16 + 256 tokens); argv[3] "mma", "mmafc" or
// "mmaproj": both MLP GEMVs, c_fc or mlp.c_proj on tensor cores (WbDecodeLinearParams::int4Mma;
// the attention block ignores it); "mlpblock": the MLP as one launch (wbDecodeMlpBlock), the
// attention block then reading the residual plus its sum (HEADS input), with the residual
// and both sums in rings as the decode step keeps them, c_fc in row tiles as the decoder
// runs it (WB_CHAIN_FC_TILES=0: the 4-rows-a-warp c_fc); prints us per layer.
// -DWB_ATTN_BARRIER_EXCHANGE: the attention block's exchanges under cluster barriers (as
// before session 19) instead of st.async pushes.
// It compiles kernels/decode/decode.cu and decode_attention_block.cu into itself
// (MC_DECODE_SRC, MC_BLOCK_SRC, MC_MLP_SRC name other copies), and with -DMC_PROBE and the copies
// decode_mlp_probe.py and decode_block_probe.py write, prints what each phase of each
// kernel takes. Not part of the build (from the repository root):
//   nvcc -O3 -std=c++17 -arch=sm_90a --expt-relaxed-constexpr -I. -o /tmp/blc
//   scripts/microbench/decode_block_layer_chain.cu
#include "kernels/common/status.cu"
#ifndef MC_DECODE_SRC
#define MC_DECODE_SRC "kernels/decode/decode.cu"
#endif
#ifndef MC_BLOCK_SRC
#define MC_BLOCK_SRC "kernels/decode/decode_attention_block.cu"
#endif
#ifndef MC_MLP_SRC
#define MC_MLP_SRC "kernels/decode/decode_mlp_block.cu"
#endif
#include MC_DECODE_SRC
#include MC_BLOCK_SRC
#include MC_MLP_SRC
#include "kernels/decode/decode_row_tiles_layout.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "chain_support.cuh"
#include "decode_chain.cuh"
#include "decode_fill.cuh"

namespace {

constexpr int E = 1024, I = 4096, H = 16, kCapacity = 512, kSets = 48, kLayers = 240;

WbDecodeWeight int4Weight(int n, int k, unsigned seed, bool bias) {
  uint8_t* q;
  __half* sc;
  CK(cudaMalloc(&q, (size_t)n * k / 2));
  CK(cudaMalloc(&sc, (size_t)n * k / 128 * 2));
  fillBytes<<<256, 256>>>(q, (size_t)n * k / 2, seed);
  fillHalf<<<256, 256>>>(sc, (size_t)n * k / 128, 0.02f, seed + 1);
  WbDecodeWeight w{};
  w.qweight = q;
  w.scales = sc;
  w.groupSize = 128;
  if (bias) {
    __half* b;
    CK(cudaMalloc(&b, n * 2));
    fillHalf<<<4, 256>>>(b, n, 0.1f, seed + 2);
    w.bias = b;
  }
  return w;
}
// c_fc as the decoder runs it since session 21: the same codes and scales (symmetric)
// repacked into row tiles (kernels/decode/decode_row_tiles_layout.h) on the host.
WbDecodeRowTiles rowTiles(const WbDecodeWeight& w, int n, int k) {
  std::vector<uint8_t> q((size_t)n * k / 2);
  std::vector<__half> sc((size_t)n * k / 128);
  CK(cudaMemcpy(q.data(), w.qweight, q.size(), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(sc.data(), w.scales, sc.size() * 2, cudaMemcpyDeviceToHost));
  const int tiles = (n + 15) / 16, chunks = k / 64, groups = k / 128;
  std::vector<uint32_t> words((size_t)tiles * chunks * 32 * 4, 0u), pairs((size_t)tiles * groups * 8, 0u);
  auto code = [&](int row, int in) { return row < n ? (q[(size_t)row * (k / 2) + in / 2] >> (4 * (in & 1))) & 15 : 0; };
  for (int t = 0; t < tiles; ++t)
    for (int a = 0; a < chunks; ++a)
      for (int lane = 0; lane < 32; ++lane)
        for (int j = 0; j < 4; ++j) {
          uint32_t word = 0;
          for (int i = 0; i < 8; ++i)
            word |= (uint32_t)code(t * 16 + (int)wbk::rowTileRow(lane, i), (int)wbk::rowTileInput(a, lane, j, i)) << (4 * i);
          words[(((size_t)t * chunks + a) * 32 + lane) * 4 + j] = word;
        }
  for (int t = 0; t < tiles; ++t)
    for (int g = 0; g < groups; ++g)
      for (int r = 0; r < 8; ++r) {
        auto bits = [&](int row) {
          if (row >= n) return 0u;
          __half h = sc[(size_t)row * groups + g];
          unsigned short b;
          memcpy(&b, &h, 2);
          return (uint32_t)b;
        };
        pairs[((size_t)t * groups + g) * 8 + r] = bits(t * 16 + r) | bits(t * 16 + r + 8) << 16;
      }
  uint32_t *dw, *dp;
  CK(cudaMalloc(&dw, words.size() * 4));
  CK(cudaMalloc(&dp, pairs.size() * 4));
  CK(cudaMemcpy(dw, words.data(), words.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dp, pairs.data(), pairs.size() * 4, cudaMemcpyHostToDevice));
  WbDecodeRowTiles r{};
  r.codes = dw;
  r.scales = dp;
  return r;
}
__half* halves(size_t n, float scale, unsigned seed) {
  __half* p;
  CK(cudaMalloc(&p, n * 2));
  fillHalf<<<256, 256>>>(p, n, scale, seed);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  const long long position = argc > 2 ? atoll(argv[2]) : 144;
  const std::string mode = argc > 3 ? argv[3] : "";
  const int mmaFc = mode == "mma" || mode == "mmafc", mmaProj = mode == "mma" || mode == "mmaproj";
  std::vector<WbDecodeWeight> qkv(kSets), proj(kSets), fc(kSets), mproj(kSets);
  std::vector<__half*> kc(kSets), vc(kSets);
  for (int s = 0; s < kSets; ++s) {
    qkv[s] = int4Weight(3 * E, E, 100 + 10 * s, true);
    proj[s] = int4Weight(E, E, 103 + 10 * s,
                         true);  // its bias is the heads' bias, added by the consumers
    fc[s] = int4Weight(I, E, 106 + 10 * s, true);
    mproj[s] = int4Weight(E, I, 109 + 10 * s, true);
    kc[s] = halves((size_t)H * kCapacity * 64, 1.f, 7000 + s);
    vc[s] = halves((size_t)H * kCapacity * 64, 1.f, 8000 + s);
  }
  __half *res = halves(E, 2.f, 1), *lnw = halves(E, 1.f, 2), *lnb = halves(E, 0.2f, 3),
         *q = halves(3 * E, 0.f, 4), *hid = halves(I, 0.f, 5);
  float* partials;
  CK(cudaMalloc(&partials, E * 4));
  CK(cudaMemset(partials, 0, E * 4));
  // mlpblock: residuals R[2], attention sums Hs[4], MLP sums Ms[4] (rings, as the step's)
  const bool mlpBlock = mode == "mlpblock";
  // The MLP block's c_fc in row tiles, as the decoder (WB_CHAIN_FC_TILES=0: 4 rows a warp).
  const char* fcTilesEnv = getenv("WB_CHAIN_FC_TILES");
  const bool fcTiles = mlpBlock && !(fcTilesEnv && fcTilesEnv[0] == '0');
  std::vector<WbDecodeRowTiles> fcT(kSets);
  if (fcTiles) {
    CK(cudaDeviceSynchronize());
    for (int s = 0; s < kSets; ++s) fcT[s] = rowTiles(fc[s], I, E);
  }
  __half* R[2] = {res, halves(E, 2.f, 6)};
  float *Hs[4], *Ms[4];
  for (int i = 0; i < 4; ++i) {
    CK(cudaMalloc(&Hs[i], E * 4));
    CK(cudaMalloc(&Ms[i], WB_DECODE_MLP_SUMS * E * 4));
    CK(cudaMemset(Hs[i], 0, E * 4));
    CK(cudaMemset(Ms[i], 0, WB_DECODE_MLP_SUMS * E * 4));
  }
  int64_t* pos;
  CK(cudaMalloc(&pos, 8));
  CK(cudaMemcpy(pos, &position, 8, cudaMemcpyHostToDevice));
  CK(cudaDeviceSynchronize());
  if (mlpBlock) {  // one layer both ways on set 0 from the same residual: how far apart
    cudaStream_t cs;
    CK(cudaStreamCreate(&cs));
    std::vector<__half> r0(E), oldOut(E), newRes(E), mb(E);
    std::vector<float> msum(WB_DECODE_MLP_SUMS * E);
    CK(cudaMemcpy(r0.data(), res, E * 2, cudaMemcpyDeviceToHost));
    __half* zeroBias = halves(E, 0.f, 9);
    for (int way = 0; way < 2; ++way) {
      CK(cudaMemcpy(res, r0.data(), E * 2, cudaMemcpyHostToDevice));
      WbDecodeAttentionBlockParams ab{};
      ab.qkv = gemvParams(WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_QKV, 3 * E, E, qkv[0], res, q, nullptr, 0);
      WbDecodeLinearParams& a = ab.qkv;
      setLayerNorm(a, lnw, lnb);
      a.position = pos;
      a.kCache = kc[0];
      a.vCache = vc[0];
      a.capacity = kCapacity;
      a.heads = H;
      a.headDim = 64;
      ab.proj = proj[0];
      ab.proj.bias = nullptr;
      ab.accumulate = 1;
      ab.scale = 0.125f;
      if (way == 0) {
        ab.headPartials = partials;
        launched(wbDecodeAttentionBlock(&ab, cs), "attention block");
        WbDecodeLinearParams f = gemvParams(WB_DECODE_IN_HEADS, WB_DECODE_OUT_GELU, I, E, fc[0], res, hid, nullptr, 0);
        setLayerNorm(f, lnw, lnb);
        f.headPartials = partials, f.headBias = proj[0].bias, f.headCount = 1, f.int4Mma = 1;
        launched(wbDecodeLinear(&f, cs), "c_fc");
        WbDecodeLinearParams m = gemvParams(WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL, E, I, mproj[0], hid, res, nullptr, 0);
        m.headPartials = partials, m.headBias = proj[0].bias, m.headCount = 1, m.headClear = 1, m.int4Mma = 1;
        launched(wbDecodeLinear(&m, cs), "mlp.c_proj");
        CK(cudaStreamSynchronize(cs));
        CK(cudaMemcpy(oldOut.data(), res, E * 2, cudaMemcpyDeviceToHost));
      } else {
        a.input = WB_DECODE_IN_HEADS, a.x = R[0], a.residual = R[1];
        a.headPartials = Ms[3], a.headBias = zeroBias, a.headCount = WB_DECODE_MLP_SUMS;
        ab.headPartials = Hs[0];
        launched(wbDecodeAttentionBlock(&ab, cs), "attention block");
        WbDecodeMlpBlockParams mbp{};
        mbp.fc = gemvParams(WB_DECODE_IN_HEADS, WB_DECODE_OUT_GELU, I, E, fc[0], R[1], nullptr, nullptr, 0);
        setLayerNorm(mbp.fc, lnw, lnb);
        mbp.fc.headPartials = Hs[0], mbp.fc.headBias = proj[0].bias, mbp.fc.headCount = 1, mbp.fc.residual = R[0];
        mbp.proj = mproj[0];
        mbp.accumulate = Ms[0];
        mbp.clearSums = Ms[3];
        mbp.clearHeads = Hs[3];
        mbp.fcTiles = fcT[0];
        launched(wbDecodeMlpBlock(&mbp, cs), "MLP block");
        CK(cudaStreamSynchronize(cs));
        CK(cudaMemcpy(newRes.data(), R[0], E * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(msum.data(), Ms[0], msum.size() * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(mb.data(), mproj[0].bias, E * 2, cudaMemcpyDeviceToHost));
      }
    }
    double d = 0, mx = 0;
    int worst = 0;
    for (int i = 0; i < E; ++i) {
      float sum = 0.f;
      for (int c = 0; c < WB_DECODE_MLP_SUMS; ++c) sum += msum[c * E + i];
      const float nv = __half2float(__float2half(__half2float(newRes[i]) +
                                                 __half2float(__float2half(sum + __half2float(mb[i])))));
      const double di = fabs(nv - __half2float(oldOut[i]));
      if (di > d) d = di, worst = i;
      mx = std::max(mx, (double)fabs(__half2float(oldOut[i])));
    }
    printf("MLP block vs three kernels, one layer: residual max |diff| %.5f at %d (max |x| %.3f)\n", d, worst, mx);
    CK(cudaMemcpy(res, r0.data(), E * 2, cudaMemcpyHostToDevice));
    for (int i = 0; i < 4; ++i) {
      CK(cudaMemset(Hs[i], 0, E * 4));
      CK(cudaMemset(Ms[i], 0, WB_DECODE_MLP_SUMS * E * 4));
    }
    CK(cudaDeviceSynchronize());
  }
  unsigned long long *gemvProbe = nullptr, *blockProbe = nullptr;
#ifdef MC_PROBE
  const size_t gemvWords = (size_t)2 * kLayers * kProbeBlocks * 8,
               blockWords = (size_t)kLayers * kProbeBlocks * 16;
  CK(cudaMalloc(&gemvProbe, gemvWords * 8));
  CK(cudaMalloc(&blockProbe, blockWords * 8));
  CK(cudaMemset(gemvProbe, 0, gemvWords * 8));
  CK(cudaMemset(blockProbe, 0, blockWords * 8));
#endif
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  for (int l = 0; l < kLayers; ++l) {
    const int s = l % kSets;
    WbDecodeAttentionBlockParams ab{};
    ab.qkv = gemvParams(WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_QKV, 3 * E, E, qkv[s], res, q,
                        blockProbe, l);
    WbDecodeLinearParams& a = ab.qkv;
    setLayerNorm(a, lnw, lnb);
    a.position = pos;
    a.kCache = kc[s];
    a.vCache = vc[s];
    a.capacity = kCapacity;
    a.heads = H;
    a.headDim = 64;
    ab.proj = proj[s];
    ab.proj.bias = nullptr;
    ab.headPartials = partials;
    ab.accumulate = 1;
    ab.scale = 0.125f;
    if (mlpBlock) {  // x = R0 + M[l-1] + bias, stored to R1; heads into H[l]
      a.input = WB_DECODE_IN_HEADS;
      a.x = R[0];
      a.residual = R[1];
      a.headPartials = Ms[(l + 3) % 4];
      a.headBias = mproj[s].bias;
      a.headCount = WB_DECODE_MLP_SUMS;
      ab.headPartials = Hs[l % 4];
      launched(wbDecodeAttentionBlock(&ab, st), "attention block");
      WbDecodeMlpBlockParams mb{};
      mb.fc = gemvParams(WB_DECODE_IN_HEADS, WB_DECODE_OUT_GELU, I, E, fc[s], R[1], nullptr, gemvProbe, 2 * l);
      setLayerNorm(mb.fc, lnw, lnb);
      mb.fc.headPartials = Hs[l % 4];
      mb.fc.headBias = proj[s].bias;
      mb.fc.headCount = 1;
      mb.fc.residual = R[0];
      mb.proj = mproj[s];
      mb.accumulate = Ms[l % 4];
      mb.clearSums = Ms[(l + 3) % 4];
      mb.clearHeads = Hs[(l + 3) % 4];
      mb.fcTiles = fcT[s];
      launched(wbDecodeMlpBlock(&mb, st), "MLP block");
      continue;
    }
    launched(wbDecodeAttentionBlock(&ab, st), "attention block");
    WbDecodeLinearParams f =
        gemvParams(WB_DECODE_IN_HEADS, WB_DECODE_OUT_GELU, I, E, fc[s], res, hid, gemvProbe, 2 * l);
    setLayerNorm(f, lnw, lnb);
    f.headPartials = partials;
    f.headBias = proj[s].bias;
    f.headCount = 1;
    f.int4Mma = mmaFc;
    launched(wbDecodeLinear(&f, st), "c_fc");
    WbDecodeLinearParams m = gemvParams(WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL, E, I, mproj[s],
                                        hid, res, gemvProbe, 2 * l + 1);
    m.headPartials = partials;
    m.headBias = proj[s].bias;
    m.headCount = 1;
    m.headClear = 1;
    m.int4Mma = mmaProj;
    launched(wbDecodeLinear(&m, st), "mlp.c_proj");
  }
  CK(cudaStreamEndCapture(st, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  const int reps = 10;
  const ReplayTimes t = timeReplays(ge, st, reps);
  printf(
      "%-14s int4 attention-block layer at position %lld: %.3f us a layer (mean of %d, min %.3f)\n",
      argc > 1 ? argv[1] : "as-is", position, t.meanMs * 1e3 / kLayers, reps,
      t.minMs * 1e3 / kLayers);
#ifdef MC_PROBE
  std::vector<unsigned long long> hg((size_t)2 * kLayers * kProbeBlocks * 8),
      hb((size_t)kLayers * kProbeBlocks * 16);
  CK(cudaMemcpy(hg.data(), gemvProbe, hg.size() * 8, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hb.data(), blockProbe, hb.size() * 8, cudaMemcpyDeviceToHost));
  std::vector<std::pair<Stamps, Stamps>> blockRuns, fcRuns, projRuns;
  for (int l = 10; l < kLayers - 10; ++l) {
    const Stamps blk{&hb, 16, l}, fcs{&hg, 8, 2 * l}, pr{&hg, 8, 2 * l + 1},
        prevPr{&hg, 8, 2 * l - 1};
    blockRuns.push_back({blk, prevPr});
    fcRuns.push_back({fcs, blk});
    projRuns.push_back({pr, fcs});
  }
  const char* blockPhases[] = {"start->wait",         "stage",     "c_attn",
                               "qkv trade",           "attention", "cluster merge",
                               "merge+c_proj+atomics"};
  if (mlpBlock) {  // decode_mlp_block_probe.py's stamps in slot 2l
    std::vector<std::pair<Stamps, Stamps>> blkRuns, mbRuns;
    for (int l = 10; l < kLayers - 10; ++l) {
      const Stamps blk{&hb, 16, l}, mb{&hg, 8, 2 * l}, prevMb{&hg, 8, 2 * l - 2};
      blkRuns.push_back({blk, prevMb});
      mbRuns.push_back({mb, blk});
    }
    summarizeStamps("attention block (HEADS)", blkRuns, blockPhases, 7);
    const char* mbPhases[] = {"start->wait", "clear+stage", "c_fc+GELU", "c_proj products", "atomics"};
    if (Stamps{&hg, 8, 20}.blocks() > 0) summarizeStamps("MLP block", mbRuns, mbPhases, 5);
    return 0;
  }
  summarizeStamps("attention block", blockRuns, blockPhases, 7);
  summarizeStamps("HEADS c_fc", fcRuns, kGemvPhases, 5);
  summarizeStamps("mlp.c_proj", projRuns, kGemvPhases, 5);
#endif
  return 0;
}
