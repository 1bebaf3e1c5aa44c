// Micro-benchmark (issue 7, docs/PERF.md "Where an int4 decode kernel's time goes"): a
// CUDA graph of the int4 attention-block decode layer (ln_1 + c_attn + attention +
// attn.c_proj as one cluster launch with the heads summed by atomics, then LayerNorm of
// the residual plus those heads + c_fc + GELU, then mlp.c_proj + residual), GPT-2 medium
// shapes, int4 g128, 240 layers over 48 weight and KV-cache sets, every step at position
// argv[2] (default 144, the middle of perf decode's 16 + 256 tokens); argv[3] "mma", "mmafc" or
// "mmaproj": both MLP GEMVs, c_fc or mlp.c_proj on tensor cores (WbDecodeLinearParams::int4Mma;
// the attention block ignores it); prints us per layer.
// It compiles kernels/decode/decode.cu and decode_attention_block.cu into itself
// (MC_DECODE_SRC, MC_BLOCK_SRC name other copies), and with -DMC_PROBE and the copies
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
#include MC_DECODE_SRC
#include MC_BLOCK_SRC

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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
  int64_t* pos;
  CK(cudaMalloc(&pos, 8));
  CK(cudaMemcpy(pos, &position, 8, cudaMemcpyHostToDevice));
  CK(cudaDeviceSynchronize());
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
  summarizeStamps("attention block", blockRuns, blockPhases, 7);
  summarizeStamps("HEADS c_fc", fcRuns, kGemvPhases, 5);
  summarizeStamps("mlp.c_proj", projRuns, kGemvPhases, 5);
#endif
  return 0;
}
