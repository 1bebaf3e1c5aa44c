// Memory as separate numbers, never mixed: process resident set (CPU); on CUDA the
// caching allocator's allocated / reserved / peak bytes (this process's tensors); and
// the device-wide use NVML reports (every process and the CUDA context), or "n/a".
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/bench/nvml.h"
#include "core/torch_compat.h"

namespace wb {

// "MB" in every series and report of this project is 2^20 bytes.
inline constexpr double kBytesPerMb = 1024.0 * 1024.0;

struct MemorySnapshot {
  double rssMb = 0.0;
  double cudaAllocatedMb = 0.0, cudaReservedMb = 0.0, cudaPeakMb = 0.0;
  bool hasCuda = false;
  std::optional<NvmlDeviceInfo> nvml;  // CUDA devices only, when NVML loads
};

// `nvml`: also NVML's device view (a driver query; leave it out where only the
// allocator's figures are wanted).
MemorySnapshot probeMemory(const torch::Device& device, bool nvml = true);
void resetPeakMemory(const torch::Device& device);
// NVML's view of a CUDA device (matched by PCI bus id); nullopt on the CPU or without NVML.
std::optional<NvmlDeviceInfo> nvmlFor(const torch::Device& device, std::string* why = nullptr);

}  // namespace wb
