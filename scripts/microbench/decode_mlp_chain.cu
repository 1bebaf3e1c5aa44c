// Micro-benchmark (issue 7, docs/PERF.md "Where an int4 decode kernel's time goes"): a
// CUDA graph of the decode MLP's two GEMV kernels (LayerNorm + c_fc + GELU, then
// mlp.c_proj + residual) with programmatic launch, GPT-2 medium shapes, 240 pairs over 48
// weight sets (more than L2 holds), fp16 and int4 g128; prints us per pair. It compiles
// kernels/decode/decode.cu into itself (MC_DECODE_SRC names another copy: the patched
// ones decode_mlp_variants.py and decode_mlp_probe.py write), so a variant of the kernel
// is one nvcc call. With -DMC_PROBE (and the probe copy) it also prints where each
// kernel's time goes, from per-block %globaltimer / clock64 stamps. Not part of the build:
//   nvcc -O3 -std=c++17 -arch=sm_90a --expt-relaxed-constexpr -I../.. -o decode_mlp_chain
//   decode_mlp_chain.cu
#include "kernels/common/status.cu"
#ifndef MC_DECODE_SRC
#define MC_DECODE_SRC "kernels/decode/decode.cu"
#endif
#include MC_DECODE_SRC

#include <algorithm>
#include <cstdio>
#include <vector>

#include "chain_support.cuh"
#include "decode_fill.cuh"

#ifdef MC_PROBE
constexpr int kProbeBlocks = 512;  // stamp slots a launch (decode_mlp_probe.py writes the same)
#endif

int main(int argc, char** argv) {
  const int E = 1024, I = 4096, sets = 48, layers = 240;
  for (int int4 = 0; int4 < 2; ++int4) {
    std::vector<WbDecodeWeight> fc(sets), pr(sets);
    for (int s = 0; s < sets; ++s) {
      for (int which = 0; which < 2; ++which) {
        const int n = which ? E : I, k = which ? I : E;
        WbDecodeWeight w{};
        if (int4) {
          uint8_t* q;
          __half* sc;
          CK(cudaMalloc(&q, (size_t)n * k / 2));
          CK(cudaMalloc(&sc, (size_t)n * k / 128 * 2));
          fillBytes<<<256, 256>>>(q, (size_t)n * k / 2, 17 + s * 2 + which);
          fillHalf<<<256, 256>>>(sc, (size_t)n * k / 128, 0.02f, 99 + s);
          w.qweight = q;
          w.scales = sc;
          w.groupSize = 128;
        } else {
          __half* h;
          CK(cudaMalloc(&h, (size_t)n * k * 2));
          fillHalf<<<1024, 256>>>(h, (size_t)n * k, 0.05f, 7 + s * 2 + which);
          w.weight = h;
        }
        __half* b;
        CK(cudaMalloc(&b, n * 2));
        fillHalf<<<4, 256>>>(b, n, 0.1f, 5 + s);
        w.bias = b;
        (which ? pr : fc)[s] = w;
      }
    }
    __half *res, *hid, *lnw, *lnb;
    CK(cudaMalloc(&res, E * 2));
    CK(cudaMalloc(&hid, I * 2));
    CK(cudaMalloc(&lnw, E * 2));
    CK(cudaMalloc(&lnb, E * 2));
    fillHalf<<<4, 256>>>(res, E, 2.f, 1);
    fillHalf<<<4, 256>>>(lnw, E, 1.f, 2);
    fillHalf<<<4, 256>>>(lnb, E, 0.2f, 3);
    CK(cudaDeviceSynchronize());
    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    unsigned long long* probe = nullptr;
#ifdef MC_PROBE
    CK(cudaMalloc(&probe, (size_t)2 * layers * kProbeBlocks * 8 * 8));
    CK(cudaMemset(probe, 0, (size_t)2 * layers * kProbeBlocks * 8 * 8));
#endif
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    for (int l = 0; l < layers; ++l) {
      WbDecodeLinearParams a{};
      a.input = WB_DECODE_IN_LAYERNORM;
      a.output = WB_DECODE_OUT_GELU;
      a.n = I;
      a.k = E;
      a.x = res;
      a.lnWeight = lnw;
      a.lnBias = lnb;
      a.lnEps = 1e-5f;
      a.weight = fc[l % sets];
      a.y = hid;
      a.programmaticLaunch = 1;
      a.sharedCarveout = int4 ? 44 : 15;
      a.argmaxValues = reinterpret_cast<float*>(probe);
      a.argmaxSlots = 2 * l;
      if (wbDecodeLinear(&a, st) != WB_STATUS_OK) {
        printf("fc: %s\n", wbKernelsLastError());
        exit(1);
      }
      WbDecodeLinearParams b{};
      b.input = WB_DECODE_IN_PLAIN;
      b.output = WB_DECODE_OUT_RESIDUAL;
      b.n = E;
      b.k = I;
      b.x = hid;
      b.weight = pr[l % sets];
      b.y = res;
      b.programmaticLaunch = 1;
      b.sharedCarveout = int4 ? 44 : 15;
      b.argmaxValues = reinterpret_cast<float*>(probe);
      b.argmaxSlots = 2 * l + 1;
      if (wbDecodeLinear(&b, st) != WB_STATUS_OK) {
        printf("proj: %s\n", wbKernelsLastError());
        exit(1);
      }
    }
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const int reps = 10;
    const ReplayTimes t = timeReplays(ge, st, reps);
    printf("%-14s %s: %.3f us per MLP (mean of %d, min %.3f)\n", argc > 1 ? argv[1] : "as-is",
           int4 ? "int4" : "fp16", t.meanMs * 1e3 / layers, reps, t.minMs * 1e3 / layers);
#ifdef MC_PROBE
    {
      std::vector<unsigned long long> h((size_t)2 * layers * kProbeBlocks * 8);
      CK(cudaMemcpy(h.data(), probe, h.size() * 8, cudaMemcpyDeviceToHost));
      // per kind (0 c_fc, 1 c_proj): sums over layers 10 .. layers-10
      double handover[2] = {0, 0}, startLag[2] = {0, 0}, preWait[2] = {0, 0}, stage[2] = {0, 0},
             wr[2] = {0, 0}, prod[2] = {0, 0}, epi[2] = {0, 0}, postMax[2] = {0, 0},
             endSpread[2] = {0, 0}, incr[2] = {0, 0};
      int cnt[2] = {0, 0};
      auto rec = [&](int slot, int b, int f) {
        return h[((size_t)slot * kProbeBlocks + b) * 8 + f];
      };
      auto nblocks = [&](int slot) {
        int nb = 0;
        while (nb < kProbeBlocks && rec(slot, nb, 0) != 0) ++nb;
        return nb;
      };
      const double ghz = 1.98;
      for (int slot = 20; slot < 2 * layers - 20; ++slot) {
        const int kind = slot & 1, nb = nblocks(slot), pb = nblocks(slot - 1);
        unsigned long long minStart = ~0ull, minWait = ~0ull, maxEnd = 0, minEnd = ~0ull,
                           prevMaxEnd = 0, prevMinWait = ~0ull;
        double st = 0, w = 0, pr = 0, ep = 0, pm = 0, pw = 0;
        for (int b = 0; b < nb; ++b) {
          minStart = std::min(minStart, rec(slot, b, 0));
          minWait = std::min(minWait, rec(slot, b, 1));
          maxEnd = std::max(maxEnd, rec(slot, b, 2));
          minEnd = std::min(minEnd, rec(slot, b, 2));
          pw += rec(slot, b, 3) / ghz;
          st += rec(slot, b, 4) / ghz;
          w += rec(slot, b, 5) / ghz;
          pr += rec(slot, b, 6) / ghz;
          ep += rec(slot, b, 7) / ghz;
          pm = std::max(
              pm, (rec(slot, b, 4) + rec(slot, b, 5) + rec(slot, b, 6) + rec(slot, b, 7)) / ghz);
        }
        for (int b = 0; b < pb; ++b) {
          prevMaxEnd = std::max(prevMaxEnd, rec(slot - 1, b, 2));
          prevMinWait = std::min(prevMinWait, rec(slot - 1, b, 1));
        }
        handover[kind] += (double)((long long)minWait - (long long)prevMaxEnd);
        startLag[kind] += (double)((long long)minStart - (long long)prevMinWait);
        incr[kind] += (double)((long long)maxEnd - (long long)prevMaxEnd);
        endSpread[kind] += (double)(maxEnd - minEnd);
        preWait[kind] += pw / nb;
        stage[kind] += st / nb;
        wr[kind] += w / nb;
        prod[kind] += pr / nb;
        epi[kind] += ep / nb;
        postMax[kind] += pm;
        cnt[kind]++;
      }
      for (int kind = 0; kind < 2; ++kind) {
        const double c = cnt[kind];
        printf(
            "  %s %s (%d blocks): increment %.0f ns = hand-over %.0f (prev last end -> first wait "
            "return) + ...; "
            "dependent launch lag %.0f (prev first wait -> first start); block mean ns: "
            "start->wait %.0f, stage %.0f, "
            "weights-ready stall %.0f, products %.0f, reduce+epilogue %.0f; max post-wait %.0f; "
            "end spread %.0f\n",
            int4 ? "int4" : "fp16", kind ? "c_proj" : "c_fc", nblocks(20 + kind), incr[kind] / c,
            handover[kind] / c, startLag[kind] / c, preWait[kind] / c, stage[kind] / c,
            wr[kind] / c, prod[kind] / c, epi[kind] / c, postMax[kind] / c, endSpread[kind] / c);
      }
      printf("  globaltimer sample deltas:");
      for (int b = 0; b < 6; ++b) printf(" %llu", rec(100, b, 2) - rec(100, b, 1));
      printf("\n");
    }
#endif
  }
  return 0;
}
