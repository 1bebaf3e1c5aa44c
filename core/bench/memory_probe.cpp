// Memory probes; see memory_probe.h.
#include "core/bench/memory_probe.h"

#include <unistd.h>

#include <fstream>

#ifdef WB_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace wb {

std::optional<NvmlDeviceInfo> nvmlFor(const torch::Device& device, std::string* why) {
#ifdef WB_WITH_CUDA
  if (device.is_cuda()) {
    const int index = device.index() < 0 ? 0 : device.index();
    char bus[32] = {0};
    std::string busId;
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, index) == cudaSuccess) busId = bus;
    return queryNvml(busId, static_cast<unsigned>(index), why);
  }
#endif
  if (why) *why = "not a CUDA device";
  (void)device;
  return std::nullopt;
}

MemorySnapshot probeMemory(const torch::Device& device, bool nvml) {
  MemorySnapshot s;
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  if (statm >> pages >> resident)
    s.rssMb = static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
#ifdef WB_WITH_CUDA
  if (device.is_cuda()) {
    const int index = device.index() < 0 ? 0 : device.index();
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    // Index 0 is StatType::AGGREGATE (all pool kinds); the enum moved namespaces
    // between LibTorch releases, its value did not.
    const size_t agg = 0;
    s.hasCuda = true;
    s.cudaAllocatedMb = static_cast<double>(stats.allocated_bytes[agg].current) / (1024.0 * 1024.0);
    s.cudaReservedMb = static_cast<double>(stats.reserved_bytes[agg].current) / (1024.0 * 1024.0);
    s.cudaPeakMb = static_cast<double>(stats.allocated_bytes[agg].peak) / (1024.0 * 1024.0);
    if (nvml) s.nvml = nvmlFor(device);
  }
#else
  (void)device;
  (void)nvml;
#endif
  return s;
}

void resetPeakMemory(const torch::Device& device) {
#ifdef WB_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#else
  (void)device;
#endif
}

}  // namespace wb
