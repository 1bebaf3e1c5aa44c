// Hugging Face GPT-2 checkpoints <-> a torch::nn::Module whose named_parameters()
// use GPT2LMHeadModel's state_dict names (Conv1D weights [in, out], as HF stores them).
// Written against named_parameters() only, so any module with those names works.
// Reads model.safetensors or a sharded index; never reads pickle (.bin/.pt).
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

namespace torch::nn {
class Module;
}

namespace wb {

// Copies the folder's weights into `model`'s parameters (converted to each parameter's
// dtype and device, under NoGradGuard). Keys match with or without the "transformer."
// prefix; HF's attn.bias / attn.masked_bias buffers are skipped; lm_head.weight is
// skipped unless the model has an lm_head parameter (untied), where it is required.
// Everything is checked before the first copy: missing or unexpected tensors, shape
// mismatches (naming tensor, file, both shapes) are InputErrors and leave the model as
// it was.
void loadHfWeights(torch::nn::Module& model, const std::filesystem::path& folder);

// Writes `config` as config.json and the parameters as model.safetensors with
// "transformer."-prefixed keys (lm_head.* as is), each in its parameter's dtype, with
// metadata {"format": "pt"} that transformers' from_pretrained requires. Each file is
// written to a temp file and renamed. Creates the folder.
void saveHfCheckpoint(const torch::nn::Module& model, const nlohmann::json& config,
                      const std::filesystem::path& folder);

// The full check that a folder is usable: builds a Gpt2 from its config.json and loads
// its weights (fp32, CPU). Torch-free signature so the CLI can call it.
struct Gpt2LoadCheck {
  int64_t tensors = 0;     // parameter tensors loaded
  int64_t parameters = 0;  // scalars, a tied head counted once
  double seconds = 0.0;    // wall time of build + load
};
Gpt2LoadCheck checkGpt2Folder(const std::filesystem::path& folder);

}  // namespace wb
