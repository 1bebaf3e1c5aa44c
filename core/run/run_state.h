// State shared by the stages of one run: the device, the compute dtype, the current
// model (loaded on first use from the profile's model source, replaced by stages
// that produce a new one), the tokenizer and the token data. LibTorch side only.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/io/token_file.h"
#include "core/model/gpt2.h"
#include "core/run/profile.h"
#include "core/torch_compat.h"

namespace wb {

class Tokenizer;

struct RunState {
  explicit RunState(const Profile& profile);
  ~RunState();

  const Profile& profile;
  torch::Device device{torch::kCPU};
  torch::Dtype dtype = torch::kFloat32;
  // How the current model's weights were produced, for benchmark labels: "fp32", or
  // e.g. "int4-g128-sym (dequantized)" after a quantize stage.
  std::string weightsLabel = "fp32";

  // The model the next stage works on, on `device`, in fp32 (stages cast copies).
  Gpt2& model();
  void setModel(Gpt2 model);
  bool hasModel() const { return !model_.is_empty(); }

  // Token data from the profile's data section (prepared from text on first use).
  const TokenFile& trainTokens();
  const TokenFile& valTokens();
  std::shared_ptr<const Tokenizer> tokenizer();

  // Models a stage leaves for later ones under a role name, e.g. the distill stage's
  // "distill/teacher", "distill/student" and "distill/baseline" for the compare stage.
  // Whoever keeps one must not change it in place afterwards (keep a copy if the model
  // stays the current one). A later keep with the same role replaces the earlier.
  struct KeptModel {
    Gpt2 model{nullptr};
    std::string stage;  // the stage that kept it
  };
  void keepModel(const std::string& role, Gpt2 model, const std::string& stage);
  const KeptModel* keptModel(const std::string& role) const;

 private:
  void loadData();
  Gpt2 model_{nullptr};
  std::unique_ptr<TokenFile> train_, val_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::map<std::string, KeptModel> kept_;
};

// "fp32" | "bf16" | "fp16" -> dtype; InputError naming `where` otherwise.
torch::Dtype parseDtype(const std::string& name, const std::string& where);
// Picks the profile's device; InputError (with a hint) when CUDA is asked for but absent.
torch::Device pickDevice(const DeviceSpec& spec);

}  // namespace wb
