// `gpt2-bench perf pipeline`: multi-GPU training measured on one machine. GPT-2
// (medium by default, random weights) at T = 1024 trains on the same synthetic batches
// as one GPU (the same engine with one stage, its micro-batches as accumulation), as
// a 2-stage pipeline (GPipe and 1F1B at several micro-batch counts) over NCCL, and as
// 2 data-parallel replicas. Per row: tokens/s and step time (n, mean ± std after
// warm-up, host clock around synchronised steps), measured vs theoretical bubble
// (CUDA-event spans), per-stage times, per-GPU peak memory, the loss curve and its
// largest relative distance to one GPU's. Torch-free header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/bench/perf_env.h"
#include "core/bench/perf_report.h"

namespace wb {

struct PipelinePerfOptions {
  std::string device = "cuda";  // "cpu" runs the same rows with the in-process transport
  std::string precision = "bf16";
  std::string attention = "sdpa";
  PerfModelShape model{24, 16, 1024, 50257, 1024};  // GPT-2 medium
  int64_t batchSize = 32, seqLen = 1024;  // global batch per step
  int stages = 2, dataParallel = 2;
  std::vector<int64_t> microBatches = {4, 8, 16};
  std::vector<std::string> schedules = {"gpipe", "1f1b"};
  int64_t baselineMicroBatches = 4;  // one GPU: accumulation chunks of the same batch
  // "measure" (one block vs the LM head + loss timed on the device), "compute"
  // (FLOP estimate), "params", or layers per stage "16,8".
  std::string balance = "measure";
  int64_t warmup = 3, steps = 12;  // steps includes the warm-up
  double lr = 3e-4;
  bool fusedOptimizer = true;
  bool includeDataParallel = true;
  uint64_t seed = 1337;
  std::string command;
};

PerfResult runPipelinePerf(const PipelinePerfOptions& options);

}  // namespace wb
