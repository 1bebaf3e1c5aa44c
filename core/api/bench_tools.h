// LibTorch-free entry point for `gpt2-bench bench`: load a model (from a profile's
// model and device sections, or from --model), sweep weight format x batch x seq_len x
// attention backend and write the Markdown / CSV / JSON results. Plain structs in and
// out. Not here: the profile's other stages (pruning etc.: run the profile for those).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/api/model_tools.h"

namespace wb {

struct BenchRequest {
  std::string profile;  // a profile file: its model, device, seed and first benchmark stage
  std::string model;    // else: hf:NAME, a folder, or a JSON config (fresh seeded weights)
  DeviceChoice device;  // used without a profile
  // Unset: the profile's benchmark stage, else the stage's defaults.
  std::optional<std::vector<int64_t>> batchSizes, seqLens;
  std::optional<std::vector<std::string>> backends, weights;
  std::optional<int64_t> decodeTokens, warmup, repeats;
  uint64_t seed = 1337;
  std::string outDir;  // empty: print only
};

struct BenchOutput {
  std::string markdown, csv;
  nlohmann::json json;
  std::vector<std::string> files;  // written, when outDir was given
};

BenchOutput runBenchmark(const BenchRequest& request);

}  // namespace wb
