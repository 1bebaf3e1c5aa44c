// State shared by the stages of one run: the device, the compute dtype, and (as the
// GPT-2 stages add them) the current model, the tokenizer and the token data. Only
// LibTorch-side code includes this header.
#pragma once

#include <memory>

#include "core/run/profile.h"
#include "core/torch_compat.h"

namespace wb {

struct RunState {
  explicit RunState(const Profile& profile);
  ~RunState();

  const Profile& profile;
  torch::Device device{torch::kCPU};
  torch::Dtype dtype = torch::kFloat32;
};

// "fp32" | "bf16" | "fp16" -> dtype; InputError naming `where` otherwise.
torch::Dtype parseDtype(const std::string& name, const std::string& where);
// Picks the profile's device; InputError (with a hint) when CUDA is asked for but absent.
torch::Device pickDevice(const DeviceSpec& spec);

}  // namespace wb
