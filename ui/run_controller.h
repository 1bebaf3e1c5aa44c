// One run of a profile on its own worker QThread around core's runProfile(). The
// worker's events are batched (BatchingObserver) and re-emitted here, on the GUI
// thread, as signals carrying value types. Cancel sets core's CancelToken, which
// stages check every step; destroying the controller cancels and waits. One
// controller runs once: start a new one for the next run.
#pragma once

#include <QObject>
#include <QString>
#include <atomic>
#include <filesystem>
#include <memory>
#include <vector>

#include "core/run/cancel_token.h"
#include "core/run/profile.h"
#include "core/run/stage_registry.h"
#include "ui/batching_observer.h"
#include "ui/core_metatypes.h"

class QThread;

namespace wb::ui {

class RunController : public QObject {
  Q_OBJECT
 public:
  RunController(Profile profile, std::filesystem::path runsRoot,
                const StageRegistry& registry = builtinStages(), QObject* parent = nullptr);
  ~RunController() override;

  void start();
  void cancel();
  bool isRunning() const { return started_ && !finished_; }
  bool isFinished() const { return finished_; }
  RunStatus status() const { return status_; }
  QString runDir() const { return runDir_; }
  const Profile& profile() const { return profile_; }
  // Samples delivered so far and batches they came in (for the perf numbers).
  int64_t samplesDelivered() const { return samplesDelivered_; }
  int64_t batchesDelivered() const { return batchesDelivered_; }

 Q_SIGNALS:
  void runStarted(const QString& runDir);
  void stageStarted(int index, const QString& type, const QString& name);
  void samplesArrived(const std::vector<wb::MetricSample>& batch);
  void logArrived(const wb::LogLine& line);
  void progressChanged(const wb::Progress& progress);
  void stageFinished(int index, const QString& name, wb::RunStatus status);
  void runFinished(wb::RunStatus status, const QString& message);

 private:
  void work();
  void drain();
  void onThreadFinished();
  void finish(RunStatus status, const QString& message);

  Profile profile_;
  std::filesystem::path runsRoot_;
  const StageRegistry& registry_;
  CancelToken cancel_;
  BatchingObserver observer_;
  QThread* thread_ = nullptr;
  std::string failure_;  // an exception that escaped runProfile (worker writes, GUI reads after join)
  bool started_ = false;
  bool finished_ = false;
  RunStatus status_ = RunStatus::Running;
  QString runDir_;
  int64_t samplesDelivered_ = 0;
  int64_t batchesDelivered_ = 0;
};

}  // namespace wb::ui
