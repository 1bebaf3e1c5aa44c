// Counts the bytes that tensors allocated on this thread hold, while a tracker is alive:
// current and peak net bytes since it was installed, per device type. Uses LibTorch's
// memory-reporting hook (the one the profiler uses), so it works for the CPU allocator,
// where no allocator statistics exist, and for CUDA's caching allocator alike.
// Not here: allocations by other threads (intra-op workers rarely allocate outputs),
// process-wide RSS (memory_probe.h), blocks freed that were allocated before install.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <c10/util/ThreadLocalDebugInfo.h>

#include "core/torch_compat.h"

namespace wb {

class AllocationTracker {
 public:
  // Counts allocations on devices of `device`'s type (index ignored) from now on.
  explicit AllocationTracker(const torch::Device& device);
  ~AllocationTracker();
  AllocationTracker(const AllocationTracker&) = delete;
  AllocationTracker& operator=(const AllocationTracker&) = delete;

  int64_t currentBytes() const;  // allocated minus freed since install (may go negative)
  int64_t peakBytes() const;     // the highest currentBytes() seen, >= 0
  void resetPeak();              // peak := current

  struct Counter;

 private:
  std::shared_ptr<Counter> counter_;
  std::unique_ptr<c10::DebugInfoGuard> guard_;
};

// What `fn` allocates on `device`: the bytes still held when it returns (a forward
// pass's activations kept for backward, its output included) and the peak above the
// starting point. CUDA: the caching allocator's statistics (device-wide, synchronised);
// CPU: an AllocationTracker on this thread.
struct AllocationDelta {
  int64_t retainedBytes = 0, peakBytes = 0;
};
AllocationDelta measureAllocations(const torch::Device& device, const std::function<void()>& fn);

}  // namespace wb
