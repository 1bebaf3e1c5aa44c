// The one interface through which a run reports what happens. The run store, the
// GUI's controller and the CLI's progress bar each implement it. Calls arrive on the
// thread that executes the run; implementations must be quick and never throw.
#pragma once

#include <string>
#include <vector>

#include "core/run/events.h"

namespace wb {

class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void onRunStart(const std::string& runDir) { (void)runDir; }
  virtual void onStageStart(int index, const std::string& type, const std::string& name) {
    (void)index, (void)type, (void)name;
  }
  virtual void onSample(const MetricSample& sample) { (void)sample; }
  virtual void onLog(const LogLine& line) { (void)line; }
  virtual void onProgress(const Progress& progress) { (void)progress; }
  virtual void onStageEnd(int index, const std::string& name, RunStatus status) {
    (void)index, (void)name, (void)status;
  }
  virtual void onRunEnd(RunStatus status, const std::string& message) {
    (void)status, (void)message;
  }
};

// Forwards every call to several observers in order.
class ObserverFanout : public RunObserver {
 public:
  void add(RunObserver* observer) { observers_.push_back(observer); }
  void onRunStart(const std::string& runDir) override;
  void onStageStart(int index, const std::string& type, const std::string& name) override;
  void onSample(const MetricSample& sample) override;
  void onLog(const LogLine& line) override;
  void onProgress(const Progress& progress) override;
  void onStageEnd(int index, const std::string& name, RunStatus status) override;
  void onRunEnd(RunStatus status, const std::string& message) override;

 private:
  std::vector<RunObserver*> observers_;
};

}  // namespace wb
