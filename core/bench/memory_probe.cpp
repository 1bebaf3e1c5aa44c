// Memory probes; see memory_probe.h.
#include "core/bench/memory_probe.h"

#include <unistd.h>

#include <fstream>

#ifdef WB_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace wb {

MemorySnapshot probeMemory(const torch::Device& device) {
  MemorySnapshot s;
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  if (statm >> pages >> resident)
    s.rssMb = static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
#ifdef WB_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    // Index 0 is StatType::AGGREGATE (all pool kinds); the enum moved namespaces
    // between LibTorch releases, its value did not.
    const size_t agg = 0;
    s.hasCuda = true;
    s.cudaAllocatedMb = static_cast<double>(stats.allocated_bytes[agg].current) / (1024.0 * 1024.0);
    s.cudaReservedMb = static_cast<double>(stats.reserved_bytes[agg].current) / (1024.0 * 1024.0);
    s.cudaPeakMb = static_cast<double>(stats.allocated_bytes[agg].peak) / (1024.0 * 1024.0);
  }
#else
  (void)device;
#endif
  return s;
}

void resetPeakMemory(const torch::Device& device) {
#ifdef WB_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#else
  (void)device;
#endif
}

}  // namespace wb
