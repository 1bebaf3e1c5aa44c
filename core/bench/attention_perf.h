// `perf attention`: the project's flash kernels against LibTorch's SDPA flash backend
// (called directly, no dispatcher choice) on the same inputs in one process: forward
// and backward times from CUDA events after warm-up, mean ± sample std over repeats,
// TFLOP/s by the FlashAttention count (fwd 4·B·H·T²·D, halved when causal; bwd 2.5×).
// Not here: printing (the CLI does), CPU timings (the kernels are CUDA only).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/bench/stats.h"

namespace wb {

struct AttentionPerfOptions {
  int64_t batch = 16, heads = 12, seqLen = 1024, headDim = 64;
  bool causal = true;
  std::string dtype = "bf16";  // bf16 or fp16
  int device = 0;              // CUDA device index
  int warmup = 5;              // untimed samples
  int repeats = 10;            // timed samples (>= 5 for the figures)
  int inner = 10;              // launches per sample (keeps the queue full; time / inner)
  bool variants = false;       // also time every tile variant of the kernels
  uint64_t seed = 1234;
};

struct AttentionPerfRow {
  std::string impl;  // "wb-flash" or "sdpa-flash"
  std::string pass;  // "fwd" or "bwd"
  int variant = 0;   // wb-flash tile variant (0 = default)
  std::vector<double> samplesMs;
  StatsSummary ms;
  double tflops = 0, tflopsStd = 0;
};

struct AttentionPerfResult {
  AttentionPerfOptions options;
  std::string device, torchVersion, commit, timestamp;
  std::vector<AttentionPerfRow> rows;
  double fwdRatio = 0, bwdRatio = 0;  // wb-flash TFLOP/s over SDPA's (default variant)
  double maxRelDiffOut = 0;           // ‖O_wb − O_sdpa‖ / ‖O_sdpa‖ on the timed inputs
  nlohmann::json toJson() const;
  std::string markdown() const;
};

// Forward FLOPs of one call by the FlashAttention convention.
double attentionForwardFlops(int64_t batch, int64_t heads, int64_t seqLen, int64_t headDim, bool causal);
// Throws RunError when the build has no CUDA kernels or SDPA flash, or no CUDA device.
AttentionPerfResult runAttentionPerf(const AttentionPerfOptions& options);

}  // namespace wb
