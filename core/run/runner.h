// Executes a profile's stages in order on the calling thread. Owns nothing the GUI
// must see: it reports through a RunObserver and stops at the next check point once
// the CancelToken is set. Stage state shared across stages (the current model, the
// data) lives in RunState, which only torch-side code sees.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "core/run/cancel_token.h"
#include "core/run/events.h"
#include "core/run/profile.h"
#include "core/run/run_observer.h"
#include "core/run/stage_registry.h"

namespace wb {

struct RunState;  // core/run/run_state.h (LibTorch side)

// What a stage sees while it runs.
class StageContext {
 public:
  StageContext(const Profile& profile, const StageSpec& spec, int index, RunObserver& observer,
               const CancelToken& cancel, std::filesystem::path runDir, RunState& state,
               std::chrono::steady_clock::time_point runStart);

  const Profile& profile() const { return profile_; }
  const StageSpec& spec() const { return spec_; }
  int index() const { return index_; }
  const CancelToken& cancel() const { return cancel_; }
  const std::filesystem::path& runDir() const { return runDir_; }
  RunState& state() { return state_; }
  RunObserver& observer() { return observer_; }

  // Typed access to the stage's validated parameters.
  int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;
  bool flag(const std::string& key) const;
  std::string text(const std::string& key) const;

  double elapsedSeconds() const;
  void sample(const std::string& series, int64_t step, double value);
  void log(const std::string& text, LogLevel level = LogLevel::Info);
  void progress(int64_t step, int64_t total, double throughput, const std::string& unit);

 private:
  const Profile& profile_;
  const StageSpec& spec_;
  int index_;
  RunObserver& observer_;
  const CancelToken& cancel_;
  std::filesystem::path runDir_;
  RunState& state_;
  std::chrono::steady_clock::time_point runStart_;
  std::chrono::steady_clock::time_point stageStart_;
};

struct RunResult {
  RunStatus status = RunStatus::Running;
  std::string message;
  bool badInput = false;  // failed on an InputError (a profile, file or data problem)
  std::filesystem::path runDir;
};

class Runner {
 public:
  Runner(Profile profile, const StageRegistry& registry);
  ~Runner();
  // Runs every stage; never throws for stage failures (they become the result).
  RunResult run(const std::filesystem::path& runDir, RunObserver& observer,
                const CancelToken& cancel);

 private:
  Profile profile_;
  const StageRegistry& registry_;
};

// The usual wiring for both front ends: create the run directory under `runsRoot`,
// record every event there, forward them to `observer`, and run.
RunResult runProfile(const Profile& profile, const std::filesystem::path& runsRoot,
                     RunObserver* observer, const CancelToken& cancel,
                     const StageRegistry& registry = builtinStages());

// ${WB_RUNS_DIR} or ${XDG_DATA_HOME:-~/.local/share}/gpt2-workbench/runs
std::filesystem::path defaultRunsRoot();

}  // namespace wb
