// LibTorch-free entry points for the front ends (CLI subcommands): evaluate a model on
// a token file, generate text, create a fresh model folder. Plain structs in, plain
// structs out. (Inspecting a folder needs no LibTorch: core/io/model_catalog.h.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/model/gpt2_config.h"

namespace wb {

struct DeviceChoice {
  std::string device = "cpu";  // "cpu" or "cuda[:N]"
  std::string dtype = "fp32";
  int threads = 0;
  std::string attention = "math";
};

struct EvalRequest {
  std::string model;
  std::string tokens;  // uint16 .bin
  int64_t seqLen = 0;  // 0: the model's n_positions
  int64_t batchSize = 8;
  int64_t stride = 0;
  int64_t maxWindows = 0;
  DeviceChoice device;
  std::string dumpLogits;  // write the first window's logits (fp32) as safetensors
};

struct EvalReport {
  double loss = 0, perplexity = 0, seconds = 0;
  int64_t tokens = 0, windows = 0;
  nlohmann::json toJson() const;
};

EvalReport evaluateModel(const EvalRequest& request);

struct GenerateRequest {
  std::string model;
  std::string prompt;                // text (GPT-2 tokenizer) ...
  std::vector<int64_t> promptIds;    // ... or ids
  int64_t maxNewTokens = 32;
  double temperature = 0.0;
  int64_t topK = 0;
  double topP = 1.0;
  bool kvCache = true;
  uint64_t seed = 1337;
  DeviceChoice device;
};

struct GenerateReport {
  std::vector<int64_t> promptIds, ids;
  std::string text;  // decoded new tokens ("" when the prompt was ids only and no tokenizer)
  double prefillSeconds = 0;
  std::vector<double> decodeSeconds;
  nlohmann::json toJson() const;
};

GenerateReport generateFromModel(const GenerateRequest& request);

// A fresh, seeded model saved as a Hugging Face folder.
void initModelFolder(const nlohmann::json& config, uint64_t seed, const std::string& outDir);

}  // namespace wb
