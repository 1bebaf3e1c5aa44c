// Device and dtype selection for a run; see run_state.h.
#include "core/run/run_state.h"

#include <thread>

namespace wb {

torch::Dtype parseDtype(const std::string& name, const std::string& where) {
  if (name == "fp32") return torch::kFloat32;
  if (name == "bf16") return torch::kBFloat16;
  if (name == "fp16") return torch::kFloat16;
  throw InputError(where, "unknown dtype \"" + name + "\" (fp32, bf16, fp16)");
}

torch::Device pickDevice(const DeviceSpec& spec) {
  if (spec.type == "cpu") return torch::Device(torch::kCPU);
  if (!compat::cudaAvailable())
    throw InputError("/device/type", "CUDA was requested but this build or machine has none",
                     "use \"type\": \"cpu\", or build against a CUDA LibTorch (docs/BUILDING.md)");
  const int index = spec.gpus.empty() ? 0 : spec.gpus.front();
  if (index >= static_cast<int>(torch::cuda::device_count()))
    throw InputError("/device/gpus", "GPU " + std::to_string(index) + " does not exist (" +
                                         std::to_string(torch::cuda::device_count()) + " visible)");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

RunState::RunState(const Profile& p) : profile(p) {
  device = pickDevice(p.device);
  dtype = parseDtype(p.device.dtype, "/device/dtype");
  // Debian's LibTorch defaults to one intra-op thread.
  const int threads = p.device.threads > 0 ? p.device.threads
                                           : static_cast<int>(std::thread::hardware_concurrency());
  torch::set_num_threads(std::max(1, threads));
  torch::manual_seed(p.seed);
}

RunState::~RunState() = default;

}  // namespace wb
