// Host or CUDA-event time points; see span_clock.h.
#include "core/parallel/span_clock.h"

#include <thread>

#ifdef WB_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "core/errors.h"

namespace wb {

#ifdef WB_WITH_CUDA
struct SpanClock::Events {
  torch::Device device;
  std::vector<std::unique_ptr<at::cuda::CUDAEvent>> points;
};
#else
struct SpanClock::Events {};
#endif

SpanClock::SpanClock(const torch::Device& device) {
#ifdef WB_WITH_CUDA
  if (device.is_cuda()) events_.reset(new Events{device, {}});
#else
  if (device.is_cuda()) throw InputError("pipeline", "this build has no CUDA support");
#endif
}

SpanClock::~SpanClock() = default;

void SpanClock::start() {
  host_.clear();
#ifdef WB_WITH_CUDA
  if (events_) events_->points.clear();
#endif
  mark();
}

size_t SpanClock::mark() {
#ifdef WB_WITH_CUDA
  if (events_) {
    // Timing enabled explicitly: LibTorch's default event flags disable it.
    auto ev = std::make_unique<at::cuda::CUDAEvent>(cudaEventDefault);
    ev->record(c10::cuda::getCurrentCUDAStream(events_->device.index()));
    events_->points.push_back(std::move(ev));
    return events_->points.size() - 1;
  }
#endif
  host_.push_back(std::chrono::steady_clock::now());
  return host_.size() - 1;
}

void SpanClock::waitIdle(const std::function<void()>& stop) {
#ifdef WB_WITH_CUDA
  if (events_) {
    at::cuda::CUDAEvent done(cudaEventDisableTiming);
    done.record(c10::cuda::getCurrentCUDAStream(events_->device.index()));
    while (!done.query()) {
      stop();
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return;
  }
#endif
  (void)stop;
}

double SpanClock::seconds(size_t id) {
#ifdef WB_WITH_CUDA
  if (events_) {
    auto& p = events_->points;
    return id == 0 ? 0.0 : static_cast<double>(p.front()->elapsed_time(*p.at(id))) * 1e-3;
  }
#endif
  return std::chrono::duration<double>(host_.at(id) - host_.front()).count();
}

}  // namespace wb
