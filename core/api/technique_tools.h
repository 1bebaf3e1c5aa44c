// LibTorch-free entry points for the technique commands of gpt2-bench: write a random
// LoRA adapter in peft's format, compute logits of a model with an adapter attached
// (for parity checks against peft), and time training steps (KD, LoRA, full fine-tune)
// with their memory. Plain structs in, JSON out. Not here: the stages (core/stages/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/api/model_tools.h"

namespace wb {

struct LoraInitRequest {
  std::string model;  // hf:NAME or a folder (the base the adapter is for)
  std::string out;    // adapter folder
  int64_t rank = 8;
  double alpha = 16.0;
  std::vector<std::string> targets{"c_attn"};
  double bStd = 0.02;  // B ~ N(0, bStd) so the adapter changes the output (peft starts B at 0)
  uint64_t seed = 1337;
};
// Returns {"modules": [...], "trainable_params": N}.
nlohmann::json initLoraAdapter(const LoraInitRequest& request);

struct LoraLogitsRequest {
  std::string model, adapter;  // base model; peft adapter folder ("" : none)
  std::string tokens;          // uint16 .bin: the first seqLen tokens are the input
  int64_t seqLen = 64;
  std::string out;  // safetensors with "logits" [1, T, V] fp32, "input_ids" [1, T] int64
  bool merge = false;  // merge the adapter into the weights before the forward
  DeviceChoice device;
};
// Returns {"tokens": T, "merged": bool, "modules": [...]}.
nlohmann::json loraLogits(const LoraLogitsRequest& request);

struct TrainBenchRequest {
  std::string mode = "lora";  // kd, lora, full
  std::string model = "124M";  // trained model: 124M, 355M, 774M, a JSON config, hf:NAME or a folder
  std::string teacher = "355M";  // kd only: same forms
  int64_t studentLayers = 0;     // kd with model "" : the teacher with this many layers (every other)
  int64_t batch = 8, seqLen = 1024, warmup = 3, repeats = 10;
  int64_t loraRank = 8;
  std::vector<std::string> loraTargets{"c_attn"};
  double temperature = 2.0, alpha = 0.5;
  DeviceChoice device;
  uint64_t seed = 1337;
};
// Random weights; warm-up steps untimed, then `repeats` steps each timed after a device
// synchronisation: step time, tokens/s (n, mean, std, samples), peak memory and the
// breakdown (weights, gradients, optimizer state, activations).
nlohmann::json benchTrainingStep(const TrainBenchRequest& request);

}  // namespace wb
