// Time points of one pipeline rank's pass, for its Span timeline. On the CPU a point is
// steady_clock now (the work is synchronous). On CUDA it is an event recorded on the
// rank's current stream, so spans are device time even though the host runs ahead;
// seconds() is read once the pass's work has completed (waitIdle()). Not here: what
// the spans mean (timeline.h) or cross-device alignment beyond a common host start.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "core/torch_compat.h"

namespace wb {

class SpanClock {
 public:
  explicit SpanClock(const torch::Device& device);
  ~SpanClock();
  SpanClock(const SpanClock&) = delete;
  SpanClock& operator=(const SpanClock&) = delete;

  // The pass's origin (point 0); every stage calls it right after the host start.
  void start();
  // A point now (in stream order on CUDA); returns its id.
  size_t mark();
  // Waits until the current stream has finished everything recorded so far, polling
  // `stop` every ~50 µs so an aborted peer never leaves us blocked in the driver (an
  // NCCL abort ends the kernels that would otherwise wait forever).
  void waitIdle(const std::function<void()>& stop);
  // Seconds from start() to point `id`; after waitIdle().
  double seconds(size_t id);

 private:
  struct Events;
  std::unique_ptr<Events> events_;
  std::vector<std::chrono::steady_clock::time_point> host_;
};

}  // namespace wb
