// Worker-thread runs; see run_controller.h.
#include "ui/run_controller.h"

#include <QThread>
#include <exception>

#include "core/run/runner.h"

namespace wb::ui {

RunController::RunController(Profile profile, std::filesystem::path runsRoot,
                             const StageRegistry& registry, QObject* parent)
    : QObject(parent),
      profile_(std::move(profile)),
      runsRoot_(std::move(runsRoot)),
      registry_(registry),
      observer_([this] {
        // Worker thread: post one queued call; Qt drops it if we are gone by then.
        QMetaObject::invokeMethod(this, &RunController::drain, Qt::QueuedConnection);
      }) {}

RunController::~RunController() {
  if (thread_) {
    cancel_.cancel();
    thread_->wait();
    // The thread is ours (not parented): its finished signal must not reach a
    // half-destroyed controller.
    thread_->disconnect(this);
    delete thread_;
  }
}

void RunController::start() {
  if (started_) return;
  started_ = true;
  thread_ = QThread::create([this] { work(); });
  thread_->setObjectName(QStringLiteral("run:") + QString::fromStdString(profile_.name));
  connect(thread_, &QThread::finished, this, &RunController::onThreadFinished,
          Qt::QueuedConnection);
  thread_->start();
}

void RunController::cancel() { cancel_.cancel(); }

void RunController::work() {
  try {
    runProfile(profile_, runsRoot_, &observer_, cancel_, registry_);
  } catch (const std::exception& e) {
    // Setting up the run directory failed, or the run store failed while writing;
    // the runner itself turns stage failures into a result.
    failure_ = e.what();
  } catch (...) {
    failure_ = "unknown error";
  }
}

void RunController::drain() {
  std::vector<ObservedEvent> events = observer_.take();
  if (events.empty()) return;
  std::vector<MetricSample> batch;
  const Progress* lastProgress = nullptr;
  auto flushSamples = [&] {
    if (batch.empty()) return;
    samplesDelivered_ += static_cast<int64_t>(batch.size());
    ++batchesDelivered_;
    Q_EMIT samplesArrived(batch);
    batch.clear();
  };
  auto flushProgress = [&] {
    // Only the newest progress of a batch matters to a status bar.
    if (lastProgress) Q_EMIT progressChanged(*lastProgress);
    lastProgress = nullptr;
  };
  for (const ObservedEvent& event : events) {
    if (const auto* s = std::get_if<MetricSample>(&event)) {
      batch.push_back(*s);
      continue;
    }
    if (const auto* p = std::get_if<Progress>(&event)) {
      lastProgress = p;
      continue;
    }
    // Anything else keeps its place relative to the samples around it.
    flushSamples();
    if (const auto* e = std::get_if<RunStartEvent>(&event)) {
      runDir_ = QString::fromStdString(e->runDir);
      Q_EMIT runStarted(runDir_);
    } else if (const auto* e = std::get_if<StageStartEvent>(&event)) {
      Q_EMIT stageStarted(e->index, QString::fromStdString(e->type),
                          QString::fromStdString(e->name));
    } else if (const auto* l = std::get_if<LogLine>(&event)) {
      Q_EMIT logArrived(*l);
    } else if (const auto* e = std::get_if<StageEndEvent>(&event)) {
      flushProgress();
      Q_EMIT stageFinished(e->index, QString::fromStdString(e->name), e->status);
    } else if (const auto* e = std::get_if<RunEndEvent>(&event)) {
      flushProgress();
      finish(e->status, QString::fromStdString(e->message));
    }
  }
  flushSamples();
  flushProgress();
}

void RunController::onThreadFinished() {
  drain();  // whatever arrived after the last queued drain
  if (!finished_)
    finish(RunStatus::Failed, QString::fromStdString(failure_.empty() ? "the run ended without a result"
                                                                      : failure_));
}

void RunController::finish(RunStatus status, const QString& message) {
  if (finished_) return;
  finished_ = true;
  status_ = status;
  Q_EMIT runFinished(status, message);
}

}  // namespace wb::ui
