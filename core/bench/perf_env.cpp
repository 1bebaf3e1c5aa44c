// Perf environment record; see perf_env.h.
#include "core/bench/perf_env.h"

#include <thread>

#include "core/bench/memory_probe.h"
#include "core/bench/perf_device.h"
#include "core/errors.h"

#ifdef WB_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <cuda_runtime_api.h>
#endif

namespace wb {

torch::Device parsePerfDevice(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name != "cuda" && name.rfind("cuda:", 0) != 0)
    throw InputError("--device", "unknown device \"" + name + "\"", "use cpu, cuda or cuda:N");
  if (!compat::cudaAvailable())
    throw InputError("--device", "CUDA was requested but this build or machine has none",
                     "use --device cpu, or build against a CUDA LibTorch (docs/BUILDING.md)");
  const int index = name == "cuda" ? 0 : std::stoi(name.substr(5));
  if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
    throw InputError("--device", "GPU " + std::to_string(index) + " does not exist");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

PerfEnv perfEnvironment(const std::string& deviceName, const std::string& command) {
  const auto device = parsePerfDevice(deviceName);
  PerfEnv e;
  e.command = command;
  e.torchVersion = compat::torchVersion();
  e.commit = buildCommit();
  e.timestamp = utcTimestamp();
  e.driver = "n/a";
  e.cudaVersion = "n/a";
  if (device.is_cuda()) {
    e.device = "cuda:" + std::to_string(device.index() < 0 ? 0 : device.index());
#ifdef WB_WITH_CUDA
    e.deviceName = at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index())->name;
    e.cudaVersion = std::to_string(CUDART_VERSION / 1000) + "." + std::to_string((CUDART_VERSION % 1000) / 10);
#endif
    if (auto nv = nvmlFor(device)) {
      e.driver = nv->driverVersion;
      if (e.deviceName.empty()) e.deviceName = nv->name;
    }
  } else {
    e.device = "cpu (" + std::to_string(torch::get_num_threads()) + " threads)";
    e.deviceName = std::to_string(std::thread::hardware_concurrency()) + " hardware threads";
  }
  return e;
}

Gpt2Config PerfModelShape::config() const {
  Gpt2Config c;
  c.nLayer = nLayer;
  c.nHead = nHead;
  c.nEmbd = nEmbd;
  c.vocabSize = vocabSize;
  c.nPositions = nPositions;
  c.residPdrop = c.embdPdrop = c.attnPdrop = 0.0;
  c.validate("perf model");
  return c;
}

nlohmann::json PerfModelShape::toJson() const {
  return {{"n_layer", nLayer}, {"n_head", nHead}, {"n_embd", nEmbd}, {"vocab_size", vocabSize},
          {"n_positions", nPositions}};
}

}  // namespace wb
