// String forms of the event enums, shared by the run store, CLI and GUI.
#include "core/run/events.h"

#include "core/run/run_observer.h"

namespace wb {

const char* toString(RunStatus status) {
  switch (status) {
    case RunStatus::Running: return "running";
    case RunStatus::Finished: return "finished";
    case RunStatus::Failed: return "failed";
    case RunStatus::Cancelled: return "cancelled";
    case RunStatus::Interrupted: return "interrupted";
  }
  return "unknown";
}

RunStatus runStatusFromString(const std::string& text) {
  if (text == "running") return RunStatus::Running;
  if (text == "finished") return RunStatus::Finished;
  if (text == "failed") return RunStatus::Failed;
  if (text == "cancelled") return RunStatus::Cancelled;
  return RunStatus::Interrupted;
}

const char* toString(LogLevel level) {
  switch (level) {
    case LogLevel::Info: return "info";
    case LogLevel::Warning: return "warning";
    case LogLevel::Error: return "error";
  }
  return "info";
}

void ObserverFanout::onRunStart(const std::string& runDir) {
  for (auto* o : observers_) o->onRunStart(runDir);
}
void ObserverFanout::onStageStart(int index, const std::string& type, const std::string& name) {
  for (auto* o : observers_) o->onStageStart(index, type, name);
}
void ObserverFanout::onSample(const MetricSample& sample) {
  for (auto* o : observers_) o->onSample(sample);
}
void ObserverFanout::onLog(const LogLine& line) {
  for (auto* o : observers_) o->onLog(line);
}
void ObserverFanout::onProgress(const Progress& progress) {
  for (auto* o : observers_) o->onProgress(progress);
}
void ObserverFanout::onStageEnd(int index, const std::string& name, RunStatus status) {
  for (auto* o : observers_) o->onStageEnd(index, name, status);
}
void ObserverFanout::onRunEnd(RunStatus status, const std::string& message) {
  for (auto* o : observers_) o->onRunEnd(status, message);
}

}  // namespace wb
