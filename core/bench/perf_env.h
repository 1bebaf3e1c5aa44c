// Shared by the `perf` measurements: the environment record of a result (device name
// and driver via NVML, LibTorch and CUDA versions, commit, date, command) and the
// model shape they run (GPT-2 124M unless told otherwise). Torch-free header.
#pragma once

#include <string>

#include "core/bench/perf_report.h"
#include "core/model/gpt2_config.h"

namespace wb {

// `device`: "cpu", "cuda" or "cuda:N" (InputError when CUDA is absent).
PerfEnv perfEnvironment(const std::string& device, const std::string& command);

// The model a perf command builds (fresh seeded weights, dropout off).
struct PerfModelShape {
  int64_t nLayer = 12, nHead = 12, nEmbd = 768, vocabSize = 50257, nPositions = 1024;
  Gpt2Config config() const;
  nlohmann::json toJson() const;
};

}  // namespace wb
