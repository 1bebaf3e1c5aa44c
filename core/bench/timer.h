// One way to time device work: CUDA events recorded on the current stream when the
// device is CUDA (elapsed time read after the stop event completes, so nothing else
// is synchronised), std::chrono::steady_clock on the CPU (synchronous work, no sync).
// Callers warm up first; this class never decides what to leave out.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "core/torch_compat.h"

namespace wb {

class DeviceTimer {
 public:
  explicit DeviceTimer(const torch::Device& device);
  ~DeviceTimer();
  DeviceTimer(const DeviceTimer&) = delete;
  DeviceTimer& operator=(const DeviceTimer&) = delete;

  void start();
  void stop();
  // Seconds between start() and stop(); on CUDA waits for the stop event only.
  double seconds();
  bool usesCudaEvents() const { return events_ != nullptr; }

 private:
  struct Events;
  std::unique_ptr<Events> events_;
  std::chrono::steady_clock::time_point t0_, t1_;
};

// Runs `fn` `warmup` times untimed, then `repeats` times, each timed with a
// DeviceTimer; returns seconds per repeat. The device is synchronised once after the
// warm-up so queued warm-up work never lands in the first sample.
std::vector<double> timeRepeated(const torch::Device& device, int64_t warmup, int64_t repeats,
                                 const std::function<void()>& fn);

}  // namespace wb
