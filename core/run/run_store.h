// The run directory (DESIGN.md §5): profile.json as run, events.jsonl appended and
// flushed per event, metrics.csv, summary.json written atomically at the end and
// rebuilt from events.jsonl when the process died. Append-only: nothing already
// written is ever rewritten except summary.json (temp file + rename).
#pragma once

#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/bench/stats.h"
#include "core/run/events.h"
#include "core/run/profile.h"
#include "core/run/run_observer.h"

namespace wb {

struct SeriesSummary {
  std::string stage;
  std::string series;
  StatsSummary stats;
  double last = 0.0;
  int64_t lastStep = 0;
};

struct RunSummary {
  std::string name;
  RunStatus status = RunStatus::Interrupted;
  std::string message;
  double durationSeconds = 0.0;
  std::string startedUtc;
  std::vector<std::string> stages;
  std::vector<SeriesSummary> series;
  nlohmann::json toJson() const;
  static RunSummary fromJson(const nlohmann::json& j);
};

// One parsed line of events.jsonl.
struct RunEvent {
  std::string kind;  // run_start, stage_start, sample, log, stage_end, run_end
  nlohmann::json data;
};

// Folds events into a RunSummary one at a time: the live store and the rebuild of a
// dead run's summary share it. Keeps only each series' values, not the events.
class SummaryBuilder {
 public:
  void add(const std::string& kind, const nlohmann::json& data);
  RunSummary build() const;

 private:
  RunSummary base_;
  int64_t pid_ = 0;
  std::string host_;
  std::map<std::pair<std::string, std::string>, std::vector<double>> values_;
  std::map<std::pair<std::string, std::string>, int64_t> lastStep_;
  std::vector<std::pair<std::string, std::string>> order_;
};

class RunStore : public RunObserver {
 public:
  // Creates `<root>/<UTC time>-<name>/` (suffixing -2, -3 ... on collision).
  static std::filesystem::path createRunDir(const std::filesystem::path& root,
                                            const std::string& profileName);
  RunStore(std::filesystem::path dir, const Profile& profile);
  ~RunStore() override;

  const std::filesystem::path& dir() const { return dir_; }

  void onRunStart(const std::string& runDir) override;
  void onStageStart(int index, const std::string& type, const std::string& name) override;
  void onSample(const MetricSample& sample) override;
  void onLog(const LogLine& line) override;
  void onStageEnd(int index, const std::string& name, RunStatus status) override;
  void onRunEnd(RunStatus status, const std::string& message) override;

  // Reads events.jsonl up to its last complete line (a torn tail is skipped).
  static std::vector<RunEvent> readEvents(const std::filesystem::path& dir);
  // summary.json if present, else rebuilt from events.jsonl (status Interrupted when
  // the run never ended, or Running when `alive` says the writer still lives).
  static RunSummary loadSummary(const std::filesystem::path& dir);
  static RunSummary summarizeEvents(const std::vector<RunEvent>& events);
  // Every run directory under root, newest first.
  static std::vector<std::filesystem::path> listRuns(const std::filesystem::path& root);

 private:
  void append(const nlohmann::json& event);
  double now() const;

  std::filesystem::path dir_;
  std::string name_;
  std::mutex mutex_;
  std::FILE* events_ = nullptr;
  std::FILE* metrics_ = nullptr;
  SummaryBuilder summary_;  // folded per event, written as summary.json at the end
  double startEpoch_ = 0.0;
};

}  // namespace wb
