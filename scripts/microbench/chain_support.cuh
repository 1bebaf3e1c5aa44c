// Shared by the micro-benchmarks here: error check, per-kernel fp16 weights, and the
// timing of a captured graph (30 warm-up replays, then 7 repeats of 200 replays timed
// with CUDA events: mean and sample std in us per replay). Host code only.
#pragma once

#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x)                                                                          \
  do {                                                                                 \
    cudaError_t ck_ = (x);                                                             \
    if (ck_ != cudaSuccess) {                                                          \
      printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(ck_));               \
      exit(1);                                                                         \
    }                                                                                  \
  } while (0)

// Kernel i's [rows[i % 4], 768] weights, distinct per kernel so that they stream from HBM.
inline std::vector<__half*> makeWeights(int kernels, const int rows[4]) {
  std::vector<__half*> w(kernels);
  for (int i = 0; i < kernels; ++i) {
    const size_t e = static_cast<size_t>(rows[i % 4]) * 768;
    CK(cudaMalloc(&w[i], e * 2));
    std::vector<__half> h(e);
    for (size_t j = 0; j < e; ++j) h[j] = __float2half(((j * 2654435761u + i) % 2001) / 1000.f - 1.f);
    CK(cudaMemcpy(w[i], h.data(), e * 2, cudaMemcpyHostToDevice));
  }
  return w;
}

// One launch's configuration: grid x block on stream s, programmatic stream serialization
// when pdl, clusters of `cluster` blocks along x when > 0 (cfg points into attr: keep the
// object alive until the launch).
struct LaunchConfig {
  cudaLaunchConfig_t cfg{};
  cudaLaunchAttribute attr[2];
  LaunchConfig(dim3 grid, dim3 block, cudaStream_t s, bool pdl, int cluster = 0) {
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.stream = s;
    unsigned n = 0;
    if (pdl) {
      attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attr[n++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster > 0) {
      attr[n].id = cudaLaunchAttributeClusterDimension;
      attr[n++].val.clusterDim = {static_cast<unsigned>(cluster), 1, 1};
    }
    cfg.attrs = attr;
    cfg.numAttrs = n;
  }
  LaunchConfig(const LaunchConfig&) = delete;
};

struct Timing {
  double mean, std;
};
inline Timing timeGraph(cudaGraphExec_t ge, cudaStream_t st) {
  for (int i = 0; i < 30; ++i) CK(cudaGraphLaunch(ge, st));
  CK(cudaStreamSynchronize(st));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<double> r;
  for (int rep = 0; rep < 7; ++rep) {
    CK(cudaEventRecord(e0, st));
    for (int i = 0; i < 200; ++i) CK(cudaGraphLaunch(ge, st));
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    r.push_back(ms * 1000.0 / 200);
  }
  Timing t{0, 0};
  for (double v : r) t.mean += v;
  t.mean /= r.size();
  for (double v : r) t.std += (v - t.mean) * (v - t.mean);
  t.std = std::sqrt(t.std / (r.size() - 1));
  return t;
}

// Mean and minimum ms of `reps` single replays of a captured graph (events around each),
// after 3 warm-up replays: the decode chains' timing.
struct ReplayTimes {
  double meanMs, minMs;
};
inline ReplayTimes timeReplays(cudaGraphExec_t ge, cudaStream_t st, int reps) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int w = 0; w < 3; ++w) CK(cudaGraphLaunch(ge, st));
  ReplayTimes t{0, 1e30};
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(e0, st));
    CK(cudaGraphLaunch(ge, st));
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.meanMs += ms / reps;
    t.minMs = ms < t.minMs ? ms : t.minMs;
  }
  return t;
}
