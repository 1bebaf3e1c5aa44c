// CUDA-event / steady_clock timing; see timer.h.
#include "core/bench/timer.h"

#include "core/errors.h"
#include "core/model/generate.h"

#ifdef WB_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#endif

namespace wb {

#ifdef WB_WITH_CUDA
struct DeviceTimer::Events {
  // Timing must be enabled explicitly: LibTorch's default event flags disable it.
  at::cuda::CUDAEvent begin{cudaEventDefault}, end{cudaEventDefault};
};
#else
struct DeviceTimer::Events {};
#endif

DeviceTimer::DeviceTimer(const torch::Device& device) {
#ifdef WB_WITH_CUDA
  if (device.is_cuda()) events_ = std::make_unique<Events>();
#else
  if (device.is_cuda()) throw InputError("timer", "this build has no CUDA support");
#endif
}

DeviceTimer::~DeviceTimer() = default;

void DeviceTimer::start() {
#ifdef WB_WITH_CUDA
  if (events_) {
    events_->begin.record();
    return;
  }
#endif
  t0_ = std::chrono::steady_clock::now();
}

void DeviceTimer::stop() {
#ifdef WB_WITH_CUDA
  if (events_) {
    events_->end.record();
    return;
  }
#endif
  t1_ = std::chrono::steady_clock::now();
}

double DeviceTimer::seconds() {
#ifdef WB_WITH_CUDA
  if (events_) {
    events_->end.synchronize();
    return static_cast<double>(events_->begin.elapsed_time(events_->end)) * 1e-3;
  }
#endif
  return std::chrono::duration<double>(t1_ - t0_).count();
}

std::vector<double> timeRepeated(const torch::Device& device, int64_t warmup, int64_t repeats,
                                 const std::function<void()>& fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  synchronize(device);
  DeviceTimer timer(device);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(repeats));
  for (int64_t i = 0; i < repeats; ++i) {
    timer.start();
    fn();
    timer.stop();
    out.push_back(timer.seconds());
  }
  return out;
}

}  // namespace wb
