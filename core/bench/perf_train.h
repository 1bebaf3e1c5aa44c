// `gpt2-bench perf train`: throughput of the workbench's own training loop (Trainer:
// sampling, autocast, backward, clipping, AdamW) on GPT-2 124M at T = 1024 over random
// tokens: step time and tokens/s (mean ± std after warm-up, CUDA events), MFU against
// the matmul peak measured in the same process and against the H100 datasheet peak,
// and memory (allocator allocated / reserved / peak, NVML device-used). Torch-free header.
#pragma once

#include <cstdint>
#include <string>

#include "core/bench/perf_env.h"
#include "core/bench/perf_report.h"

namespace wb {

struct TrainPerfOptions {
  std::string device = "cuda";
  std::string precision = "bf16";  // fp32, bf16, fp16
  std::string attention = "sdpa";  // math, sdpa, flash
  PerfModelShape model;
  int64_t batchSize = 16, seqLen = 1024;
  int64_t warmup = 5, repeats = 20;
  bool fusedOptimizer = true;
  bool activationCheckpointing = false;
  bool fusedLmHeadLoss = false;  // chunked LM head + loss (core/train/fused_lm_loss.h)
  int64_t lmHeadChunkRows = 4096;
  bool lossKernel = true;  // its softmax cross-entropy kernel (CUDA, 16-bit) or LibTorch ops
  bool gradsToNone = true;  // TrainOptions::gradsToNone
  bool fusedLayerNorm = true;  // Gpt2::setFusedLayerNorm (kernels/layernorm under autocast)
  // Matmul peak for MFU in TFLOP/s; 0: measure it here (8192^3 GEMMs in the training dtype).
  double peakTflops = 0.0;
  double datasheetTflops = 989.4;  // H100 SXM dense bf16
  uint64_t seed = 1337;
  // Non-empty: after timing, 3 more steps are traced with Kineto (CUDA builds) into this
  // Chrome trace JSON file (scripts/kernel-trace-summary reads it).
  std::string traceFile;
  std::string command;
};

PerfResult runTrainPerf(const TrainPerfOptions& options);

}  // namespace wb
