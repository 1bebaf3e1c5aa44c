// Micro-benchmark (issue 7, docs/PERF.md "Where an int4 decode kernel's time goes"): a
// CUDA graph of the decode MLP's two GEMV kernels (LayerNorm + c_fc + GELU, then
// mlp.c_proj + residual) with programmatic launch, GPT-2 medium shapes, 240 pairs over 48
// weight sets (more than L2 holds), fp16, int4 g128 and int4 g128 on tensor cores
// (WbDecodeLinearParams::int4Mma); prints us per pair, and how far the tensor-core pair's
// outputs are from the half2 pair's on one set of inputs. It compiles
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
#include "decode_chain.cuh"
#include "decode_fill.cuh"

int main(int argc, char** argv) {
  const int E = 1024, I = 4096, sets = 48, layers = 240;
  std::vector<__half> refHid, refRes;  // the half2 int4 pair's outputs, set 0
  for (int mode = 0; mode < 3; ++mode) {
    const int int4 = mode > 0, mma = mode == 2;
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
    if (int4) {  // one eager pair on set 0 from the filled residual, then the residual refilled
      WbDecodeLinearParams a = gemvParams(WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_GELU, I, E, fc[0], res, hid, nullptr, 0);
      setLayerNorm(a, lnw, lnb);
      a.int4Mma = mma;
      launched(wbDecodeLinear(&a, st), "c_fc");
      WbDecodeLinearParams b = gemvParams(WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL, E, I, pr[0], hid, res, nullptr, 1);
      b.int4Mma = mma;
      launched(wbDecodeLinear(&b, st), "mlp.c_proj");
      std::vector<__half> h(I), r(E);
      CK(cudaMemcpy(h.data(), hid, I * 2, cudaMemcpyDeviceToHost));
      CK(cudaMemcpy(r.data(), res, E * 2, cudaMemcpyDeviceToHost));
      if (!mma) {
        refHid = h, refRes = r;
      } else {
        double dh = 0, dr = 0, mh = 0, mr = 0;
        for (int i = 0; i < I; ++i)
          dh = std::max(dh, (double)fabsf(__half2float(h[i]) - __half2float(refHid[i]))),
          mh = std::max(mh, (double)fabsf(__half2float(refHid[i])));
        for (int i = 0; i < E; ++i)
          dr = std::max(dr, (double)fabsf(__half2float(r[i]) - __half2float(refRes[i]))),
          mr = std::max(mr, (double)fabsf(__half2float(refRes[i])));
        printf("tensor cores vs half2, one pair: GELU out max |diff| %.5f (max |y| %.3f), residual %.5f (max %.3f)\n",
               dh, mh, dr, mr);
      }
      fillHalf<<<4, 256>>>(res, E, 2.f, 1);
      CK(cudaDeviceSynchronize());
    }
    unsigned long long* probe = nullptr;
#ifdef MC_PROBE
    CK(cudaMalloc(&probe, (size_t)2 * layers * kProbeBlocks * 8 * 8));
    CK(cudaMemset(probe, 0, (size_t)2 * layers * kProbeBlocks * 8 * 8));
#endif
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    for (int l = 0; l < layers; ++l) {
      WbDecodeLinearParams a = gemvParams(WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_GELU, I, E,
                                          fc[l % sets], res, hid, probe, 2 * l);
      setLayerNorm(a, lnw, lnb);
      a.int4Mma = mma;
      launched(wbDecodeLinear(&a, st), "c_fc");
      WbDecodeLinearParams b = gemvParams(WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL, E, I,
                                                pr[l % sets], hid, res, probe, 2 * l + 1);
      b.int4Mma = mma;
      launched(wbDecodeLinear(&b, st), "mlp.c_proj");
    }
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const int reps = 10;
    const ReplayTimes t = timeReplays(ge, st, reps);
    printf("%-14s %s: %.3f us per MLP (mean of %d, min %.3f)\n", argc > 1 ? argv[1] : "as-is",
           mma ? "int4 mma" : int4 ? "int4" : "fp16", t.meanMs * 1e3 / layers, reps, t.minMs * 1e3 / layers);
#ifdef MC_PROBE
    std::vector<unsigned long long> h((size_t)2 * layers * kProbeBlocks * 8);
    CK(cudaMemcpy(h.data(), probe, h.size() * 8, cudaMemcpyDeviceToHost));
    std::vector<std::pair<Stamps, Stamps>> fcRuns, projRuns;
    for (int l = 10; l < layers - 10; ++l) {
      const Stamps fcs{&h, 8, 2 * l}, pr{&h, 8, 2 * l + 1}, prevPr{&h, 8, 2 * l - 1};
      fcRuns.push_back({fcs, prevPr});
      projRuns.push_back({pr, fcs});
    }
    if (Stamps{&h, 8, 20}.blocks() > 0) {  // decode_mma_probe.py stamps the tensor-core kernel
      summarizeStamps(int4 ? "int4 c_fc" : "fp16 c_fc", fcRuns, kGemvPhases, 5);
      summarizeStamps(int4 ? "int4 c_proj" : "fp16 c_proj", projRuns, kGemvPhases, 5);
    }
#endif
  }
  return 0;
}
