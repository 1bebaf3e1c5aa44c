// The CLI's RunObserver: a one-line progress bar on a terminal (plain lines when
// stdout is not a TTY), log lines on stderr, and the summary table at the end.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "core/run/run_observer.h"
#include "core/run/run_store.h"

namespace wb::cli {

class ProgressPrinter : public RunObserver {
 public:
  explicit ProgressPrinter(bool quiet);
  void onRunStart(const std::string& runDir) override;
  void onStageStart(int index, const std::string& type, const std::string& name) override;
  void onLog(const LogLine& line) override;
  void onProgress(const Progress& progress) override;
  void onStageEnd(int index, const std::string& name, RunStatus status) override;

 private:
  void clearBar();
  bool tty_;
  bool quiet_;
  bool barShown_ = false;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point lastDraw_{};
};

// llama-bench-style table: stage | series | n | mean ± std | min | max | last.
std::string formatSummaryTable(const RunSummary& summary);

}  // namespace wb::cli
