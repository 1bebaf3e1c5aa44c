// LoRA on GPT-2's Conv1D layers: y = x W + b + dropout(x) A B · alpha/r, with A [in, r]
// (kaiming-uniform, as peft) and B [r, out] (zeros), injected by module-name pattern
// with peft's rule, base weights frozen; merge/unmerge; peft's on-disk format
// (adapter_config.json + adapter_model.safetensors). Not here: DoRA, per-module
// rank/alpha patterns, bias training, adapters on embeddings.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/model/gpt2.h"
#include "core/train/trainer.h"

namespace wb {

struct LoraOptions {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  std::vector<std::string> targets = {"c_attn"};
  bool rsLora = false;  // scale alpha/sqrt(r) instead of alpha/r (peft's use_rslora)
  double scale() const;
};

// peft's rule for a list of targets: the module name equals a target or ends with
// "." + target ("c_proj" matches both attn.c_proj and mlp.c_proj).
bool loraTargetMatches(const std::string& moduleName, const std::vector<std::string>& targets);

// Trainable LoRA parameters for `config` without building the model: r (in + out) per
// matched Conv1D (GPT-2 124M, r = 8 on c_attn: 294,912).
int64_t loraParameterCount(const Gpt2Config& config, const std::vector<std::string>& targets,
                           int64_t rank);

// The low-rank side path of one Conv1D; its tensors require grad.
class LoraLayer : public Conv1DAdapter {
 public:
  LoraLayer(int64_t in, int64_t out, const LoraOptions& options, const torch::TensorOptions& t);
  torch::Tensor forward(const torch::Tensor& x, bool training) override;
  torch::Tensor delta() const;  // A B · scale, [in, out] like the Conv1D weight
  torch::Tensor a, b;           // [in, r], [r, out]
  double scale, dropout;
};

// Bytes a training step holds beyond activations.
struct TrainingMemory {
  int64_t weights = 0;         // every parameter, adapters included
  int64_t gradients = 0;       // one gradient per trainable parameter
  int64_t optimizerState = 0;  // AdamW: two moments per trainable parameter
};
TrainingMemory trainingMemory(torch::nn::Module& model, const NamedTensors& trainable,
                              const NamedTensors& extraWeights = {});

class LoraModel {
 public:
  // Attaches fresh adapters (A from the global torch RNG) to every matched Conv1D and
  // freezes the base parameters. InputError when a target matches no Conv1D.
  LoraModel(Gpt2 model, LoraOptions options);
  // Reads a peft adapter folder and attaches it to `model` (InputError naming the file
  // for a non-LoRA config, an unsupported option, a missing/unexpected key or a shape).
  static std::unique_ptr<LoraModel> load(Gpt2 model, const std::filesystem::path& folder);
  // Restores the base parameters' requires_grad flags; adapters stay attached unless
  // detach() was called.
  ~LoraModel();
  LoraModel(const LoraModel&) = delete;
  LoraModel& operator=(const LoraModel&) = delete;

  // "transformer.h.0.attn.c_attn.lora_A" / "...lora_B", the optimizer's view.
  NamedTensors parameters() const;
  int64_t trainableParameterCount() const;
  int64_t optimizerStateBytes() const;  // AdamW's two fp32 moments per parameter

  // W += A B · scale and the side path is switched off; unmerge undoes it (up to
  // rounding). No-ops when already in that state.
  void merge();
  void unmerge();
  bool merged() const { return merged_; }
  // Removes the adapters from the model (merge first to keep their effect).
  void detach();

  // peft's layout: lora_A.weight [r, in] = A^T, lora_B.weight [out, r] = B^T, keys
  // "base_model.model.<module>.lora_A.weight". fp32, temp file + rename.
  void save(const std::filesystem::path& folder, const std::string& baseModelName) const;

  const LoraOptions& options() const { return options_; }
  Gpt2& model() { return model_; }
  std::vector<std::string> moduleNames() const;

 private:
  void copyFromPeftFile(const std::filesystem::path& path);
  struct Site {
    std::string name;
    Conv1D conv;
    std::shared_ptr<LoraLayer> layer;
  };
  Gpt2 model_;
  LoraOptions options_;
  std::vector<Site> sites_;
  std::vector<bool> baseFlags_;
  bool merged_ = false;
  bool detached_ = false;
};

}  // namespace wb
