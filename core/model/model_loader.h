// Turns a profile's model source into a Gpt2: "config" (fresh weights from the
// profile's seed), "hf:NAME" (the Hugging Face cache, offline) or a folder with
// config.json + model.safetensors.
#pragma once

#include <string>

#include "core/model/gpt2.h"
#include "core/run/profile.h"

namespace wb {

Gpt2 loadModel(const ModelSpec& spec, uint64_t seed);
// A Hugging Face folder (config.json + model.safetensors).
Gpt2 loadModelFolder(const std::filesystem::path& folder);
// A separate copy of `model` (same config and backend) in `dtype` on `device`, for
// evaluation or inference in 16-bit without touching the fp32 master weights.
Gpt2 copyModel(Gpt2& model, torch::Dtype dtype, const torch::Device& device);
// InputError naming /device/dtype when LibTorch cannot run matmuls in `dtype` on `device`.
void checkDtypeSupported(torch::Dtype dtype, const torch::Device& device);
}  // namespace wb
