// Per-thread allocation counting through c10's memory-reporting hook; see alloc_tracker.h.
#include "core/bench/alloc_tracker.h"

#include <algorithm>
#include <atomic>

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>

#include "core/bench/memory_probe.h"
#include "core/model/generate.h"

namespace wb {

struct AllocationTracker::Counter : public c10::MemoryReportingInfoBase {
  explicit Counter(c10::DeviceType t) : type(t) {}
  // The totals' integer type changed between LibTorch releases (int64_t, then size_t);
  // declaring both makes exactly one of them the override, with no version guard.
  void reportMemoryUsage(void* ptr, int64_t size, int64_t total, int64_t reserved, c10::Device device) {
    (void)total, (void)reserved;
    record(ptr, size, device);
  }
  void reportMemoryUsage(void* ptr, int64_t size, size_t total, size_t reserved, c10::Device device) {
    (void)total, (void)reserved;
    record(ptr, size, device);
  }
  bool memoryProfilingEnabled() const override { return true; }

  void record(void*, int64_t size, c10::Device device) {
    if (device.type() != type) return;
    const int64_t now = current.fetch_add(size) + size;
    int64_t p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
  c10::DeviceType type;
  std::atomic<int64_t> current{0}, peak{0};
};

AllocationTracker::AllocationTracker(const torch::Device& device)
    : counter_(std::make_shared<Counter>(device.type())),
      guard_(std::make_unique<c10::DebugInfoGuard>(c10::DebugInfoKind::PROFILER_STATE, counter_)) {}

AllocationTracker::~AllocationTracker() = default;

int64_t AllocationTracker::currentBytes() const { return counter_->current.load(); }
int64_t AllocationTracker::peakBytes() const { return std::max<int64_t>(0, counter_->peak.load()); }
void AllocationTracker::resetPeak() { counter_->peak.store(counter_->current.load()); }

AllocationDelta measureAllocations(const torch::Device& device, const std::function<void()>& fn) {
  AllocationDelta d;
  synchronize(device);
  if (device.is_cuda()) {
    constexpr double kMb = 1024.0 * 1024.0;
    const double before = probeMemory(device).cudaAllocatedMb;
    resetPeakMemory(device);
    fn();
    synchronize(device);
    const MemorySnapshot after = probeMemory(device);
    d.retainedBytes = static_cast<int64_t>((after.cudaAllocatedMb - before) * kMb);
    d.peakBytes = static_cast<int64_t>((after.cudaPeakMb - before) * kMb);
    return d;
  }
  AllocationTracker tracker(device);
  fn();
  d.retainedBytes = tracker.currentBytes();
  d.peakBytes = tracker.peakBytes();
  return d;
}

}  // namespace wb
