// Worker-side event batching; see batching_observer.h.
#include "ui/batching_observer.h"

namespace wb::ui {

BatchingObserver::BatchingObserver(std::function<void()> wake) : wake_(std::move(wake)) {}

void BatchingObserver::push(ObservedEvent event) {
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    first = pending_.empty();
    if (std::holds_alternative<RunEndEvent>(event)) runEndSeen_ = true;
    pending_.push_back(std::move(event));
  }
  // Only the first event of a batch wakes the GUI: while it is busy, later events
  // pile up and arrive together, so a fast stage cannot flood the event queue.
  if (first && wake_) wake_();
}

void BatchingObserver::onRunStart(const std::string& runDir) { push(RunStartEvent{runDir}); }
void BatchingObserver::onStageStart(int index, const std::string& type, const std::string& name) {
  push(StageStartEvent{index, type, name});
}
void BatchingObserver::onSample(const MetricSample& sample) { push(sample); }
void BatchingObserver::onLog(const LogLine& line) { push(line); }
void BatchingObserver::onProgress(const Progress& progress) { push(progress); }
void BatchingObserver::onStageEnd(int index, const std::string& name, RunStatus status) {
  push(StageEndEvent{index, name, status});
}
void BatchingObserver::onRunEnd(RunStatus status, const std::string& message) {
  push(RunEndEvent{status, message});
}

std::vector<ObservedEvent> BatchingObserver::take() {
  std::vector<ObservedEvent> out;
  std::lock_guard lock(mutex_);
  out.swap(pending_);
  return out;
}

bool BatchingObserver::runEndSeen() const {
  std::lock_guard lock(mutex_);
  return runEndSeen_;
}

}  // namespace wb::ui
