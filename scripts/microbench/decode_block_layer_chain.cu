// Micro-benchmark (issue 7, docs/PERF.md "Where an int4 decode kernel's time goes"): a
// CUDA graph of the int4 attention-block decode layer (ln_1 + c_attn + attention +
// attn.c_proj as one cluster launch with the heads summed by atomics, then LayerNorm of
// the residual plus those heads + c_fc + GELU, then mlp.c_proj + residual), GPT-2 medium
// shapes, int4 g128, 240 layers over 48 weight and KV-cache sets, every step at position
// argv[2] (default 144, the middle of perf decode's 16 + 256 tokens); prints us per layer.
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
#include <vector>

#include "chain_support.cuh"
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

#ifdef MC_PROBE
// One kernel of the chain: its stamps (globaltimer entry / wait / end at 0..2, then
// clock64 phase deltas), `stride` u64 a block, 512 blocks a slot.
struct Stamps {
  const std::vector<unsigned long long>* h;
  int stride, slot;
  unsigned long long at(int b, int f) const { return (*h)[((size_t)slot * 512 + b) * stride + f]; }
  int blocks() const {
    int n = 0;
    while (n < 512 && at(n, 0) != 0) ++n;
    return n;
  }
};
void summarize(const char* name, const std::vector<std::pair<Stamps, Stamps>>& runs,
               const char* const* phases, int nphases) {
  double handover = 0, incr = 0, ph[16] = {};
  for (const auto& [cur, prev] : runs) {
    unsigned long long minWait = ~0ull, maxEnd = 0, prevMaxEnd = 0;
    const int nb = cur.blocks();
    for (int b = 0; b < nb; ++b) {
      minWait = std::min(minWait, cur.at(b, 1));
      maxEnd = std::max(maxEnd, cur.at(b, 2));
      for (int f = 0; f < nphases; ++f) ph[f] += cur.at(b, 3 + f) / 1.98 / nb;
    }
    for (int b = 0; b < prev.blocks(); ++b) prevMaxEnd = std::max(prevMaxEnd, prev.at(b, 2));
    handover += (double)((long long)minWait - (long long)prevMaxEnd);
    incr += (double)((long long)maxEnd - (long long)prevMaxEnd);
  }
  const double n = runs.size();
  printf("  %s (%d blocks): increment %.0f ns, hand-over %.0f; block means ns:", name,
         runs[0].first.blocks(), incr / n, handover / n);
  for (int f = 0; f < nphases; ++f)
    printf(" %s %.0f%s", phases[f], ph[f] / n, f + 1 < nphases ? "," : "\n");
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const long long position = argc > 2 ? atoll(argv[2]) : 144;
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
  const size_t gemvWords = (size_t)2 * kLayers * 512 * 8, blockWords = (size_t)kLayers * 512 * 16;
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
  auto check = [](WbStatus s, const char* what) {
    if (s != WB_STATUS_OK) {
      printf("%s: %s\n", what, wbKernelsLastError());
      exit(1);
    }
  };
  for (int l = 0; l < kLayers; ++l) {
    const int s = l % kSets;
    WbDecodeAttentionBlockParams ab{};
    WbDecodeLinearParams& a = ab.qkv;
    a.input = WB_DECODE_IN_LAYERNORM;
    a.output = WB_DECODE_OUT_QKV;
    a.n = 3 * E;
    a.k = E;
    a.weight = qkv[s];
    a.y = q;
    a.x = res;
    a.lnWeight = lnw;
    a.lnBias = lnb;
    a.lnEps = 1e-5f;
    a.position = pos;
    a.kCache = kc[s];
    a.vCache = vc[s];
    a.capacity = kCapacity;
    a.heads = H;
    a.headDim = 64;
    a.programmaticLaunch = 1;
    a.sharedCarveout = 44;
    a.argmaxValues = reinterpret_cast<float*>(blockProbe);
    a.argmaxSlots = l;
    ab.proj = proj[s];
    ab.proj.bias = nullptr;
    ab.headPartials = partials;
    ab.accumulate = 1;
    ab.scale = 0.125f;
    check(wbDecodeAttentionBlock(&ab, st), "attention block");
    WbDecodeLinearParams f{};
    f.input = WB_DECODE_IN_HEADS;
    f.output = WB_DECODE_OUT_GELU;
    f.n = I;
    f.k = E;
    f.weight = fc[s];
    f.y = hid;
    f.x = res;
    f.lnWeight = lnw;
    f.lnBias = lnb;
    f.lnEps = 1e-5f;
    f.headPartials = partials;
    f.headBias = proj[s].bias;
    f.headCount = 1;
    f.programmaticLaunch = 1;
    f.sharedCarveout = 44;
    f.argmaxValues = reinterpret_cast<float*>(gemvProbe);
    f.argmaxSlots = 2 * l;
    check(wbDecodeLinear(&f, st), "c_fc");
    WbDecodeLinearParams m{};
    m.input = WB_DECODE_IN_PLAIN;
    m.output = WB_DECODE_OUT_RESIDUAL;
    m.n = E;
    m.k = I;
    m.weight = mproj[s];
    m.x = hid;
    m.y = res;
    m.headPartials = partials;
    m.headBias = proj[s].bias;
    m.headCount = 1;
    m.headClear = 1;
    m.programmaticLaunch = 1;
    m.sharedCarveout = 44;
    m.argmaxValues = reinterpret_cast<float*>(gemvProbe);
    m.argmaxSlots = 2 * l + 1;
    check(wbDecodeLinear(&m, st), "mlp.c_proj");
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
  std::vector<unsigned long long> hg((size_t)2 * kLayers * 512 * 8), hb((size_t)kLayers * 512 * 16);
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
  const char* gemvPhases[] = {"start->wait", "stage", "weights stall", "products",
                              "reduce+epilogue"};
  summarize("attention block", blockRuns, blockPhases, 7);
  summarize("HEADS c_fc", fcRuns, gemvPhases, 5);
  summarize("mlp.c_proj", projRuns, gemvPhases, 5);
#endif
  return 0;
}
