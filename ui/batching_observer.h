// The RunObserver that sits on a run's worker thread: it only appends each event to
// a list under a mutex and, when the list turns non-empty, calls `wake` once so the
// GUI thread can take the whole batch. It never waits on the GUI and never throws.
// Delivering the batch (signals, ordering) is RunController's job.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "core/run/run_observer.h"

namespace wb::ui {

struct RunStartEvent {
  std::string runDir;
};
struct StageStartEvent {
  int index = 0;
  std::string type, name;
};
struct StageEndEvent {
  int index = 0;
  std::string name;
  RunStatus status = RunStatus::Finished;
};
struct RunEndEvent {
  RunStatus status = RunStatus::Finished;
  std::string message;
};
using ObservedEvent = std::variant<RunStartEvent, StageStartEvent, MetricSample, LogLine,
                                   Progress, StageEndEvent, RunEndEvent>;

class BatchingObserver : public RunObserver {
 public:
  // `wake` runs on the worker thread, at most once per batch taken.
  explicit BatchingObserver(std::function<void()> wake);

  void onRunStart(const std::string& runDir) override;
  void onStageStart(int index, const std::string& type, const std::string& name) override;
  void onSample(const MetricSample& sample) override;
  void onLog(const LogLine& line) override;
  void onProgress(const Progress& progress) override;
  void onStageEnd(int index, const std::string& name, RunStatus status) override;
  void onRunEnd(RunStatus status, const std::string& message) override;

  // Everything observed since the last call, in order (GUI thread).
  std::vector<ObservedEvent> take();
  bool runEndSeen() const;

 private:
  void push(ObservedEvent event);

  std::function<void()> wake_;
  mutable std::mutex mutex_;
  std::vector<ObservedEvent> pending_;
  bool runEndSeen_ = false;
};

}  // namespace wb::ui
