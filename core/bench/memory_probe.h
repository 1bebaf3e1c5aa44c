// Memory as three separate numbers, never mixed: process resident set (CPU), and on
// CUDA the caching allocator's allocated / reserved / peak bytes. Device-wide use
// (NVML) comes with the GPU issue.
#pragma once

#include <cstdint>

#include "core/torch_compat.h"

namespace wb {

struct MemorySnapshot {
  double rssMb = 0.0;
  double cudaAllocatedMb = 0.0, cudaReservedMb = 0.0, cudaPeakMb = 0.0;
  bool hasCuda = false;
};

MemorySnapshot probeMemory(const torch::Device& device);
void resetPeakMemory(const torch::Device& device);

}  // namespace wb
