// Host helpers shared by the decode chains (decode_mlp_chain.cu, decode_block_layer_chain.cu),
// included after the decode sources they compile in: one GEMV launch's common fields, a
// launch that stops the program with the kernels' own message, and the summary of the
// per-block stamps the probe copies write (decode_mlp_probe.py, decode_block_probe.py).
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

// The fields every GEMV of a chain sets: programmatic launch, the carveout the per-phase
// decode steps ask for (44% int4, 15% fp16; WB_CHAIN_CARVEOUT=percent overrides it, e.g.
// 28, the MLP-block step's) and the probe buffer and slot (ignored unless stamped).
inline WbDecodeLinearParams gemvParams(WbDecodeInput in, WbDecodeOutput out, int n, int k,
                                       const WbDecodeWeight& w, const void* x, void* y,
                                       unsigned long long* probe, int slot) {
  WbDecodeLinearParams p{};
  p.input = in;
  p.output = out;
  p.n = n;
  p.k = k;
  p.weight = w;
  p.x = x;
  p.y = y;
  p.programmaticLaunch = 1;
  const char* carveout = getenv("WB_CHAIN_CARVEOUT");
  p.sharedCarveout = carveout ? atoi(carveout) : w.qweight ? 44 : 15;
  p.argmaxValues = reinterpret_cast<float*>(probe);
  p.argmaxSlots = slot;
  return p;
}
inline void setLayerNorm(WbDecodeLinearParams& p, const __half* w, const __half* b) {
  p.lnWeight = w;
  p.lnBias = b;
  p.lnEps = 1e-5f;
}
inline void launched(WbStatus s, const char* what) {
  if (s != WB_STATUS_OK) {
    printf("%s: %s\n", what, wbKernelsLastError());
    exit(1);
  }
}

// Stamp slots a launch in the probe buffers (the probe scripts write the same).
constexpr int kProbeBlocks = 512;

// One kernel launch of a chain in a copied-back probe buffer: per block, %globaltimer at
// entry / after the wait / at the end (fields 0..2), then clock64 phase deltas; `stride`
// u64 a block, kProbeBlocks blocks a slot.
struct Stamps {
  const std::vector<unsigned long long>* h;
  int stride, slot;
  unsigned long long at(int b, int f) const {
    return (*h)[((size_t)slot * kProbeBlocks + b) * stride + f];
  }
  int blocks() const {
    int n = 0;
    while (n < kProbeBlocks && at(n, 0) != 0) ++n;
    return n;
  }
};
// Over (kernel, its predecessor) pairs: the mean increment (last end minus the
// predecessor's last end), hand-over (predecessor's last end to the first wait return) and
// block-mean phases in ns (clock64 at 1.98 GHz, the H100's clock under these loads).
inline void summarizeStamps(const char* name, const std::vector<std::pair<Stamps, Stamps>>& runs,
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
// The phases decode_mlp_probe.py stamps in a GEMV kernel.
constexpr const char* kGemvPhases[] = {"start->wait", "stage", "weights stall", "products",
                                       "reduce+epilogue"};
