// Stage execution and the standard run wiring; see runner.h.
#include "core/run/runner.h"

#include <cstdlib>
#include <exception>

#include "core/run/run_state.h"
#include "core/run/run_store.h"

namespace wb {

StageContext::StageContext(const Profile& profile, const StageSpec& spec, int index,
                           RunObserver& observer, const CancelToken& cancel,
                           std::filesystem::path runDir, RunState& state,
                           std::chrono::steady_clock::time_point runStart)
    : profile_(profile),
      spec_(spec),
      index_(index),
      observer_(observer),
      cancel_(cancel),
      runDir_(std::move(runDir)),
      state_(state),
      runStart_(runStart),
      stageStart_(std::chrono::steady_clock::now()) {}

int64_t StageContext::integer(const std::string& key) const {
  return spec_.params.at(key).get<int64_t>();
}
double StageContext::number(const std::string& key) const {
  return spec_.params.at(key).get<double>();
}
bool StageContext::flag(const std::string& key) const { return spec_.params.at(key).get<bool>(); }
std::string StageContext::text(const std::string& key) const {
  return spec_.params.at(key).get<std::string>();
}

double StageContext::elapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - runStart_).count();
}

void StageContext::sample(const std::string& series, int64_t step, double value) {
  observer_.onSample({spec_.name, series, step, value, elapsedSeconds()});
}

void StageContext::log(const std::string& text, LogLevel level) {
  observer_.onLog({spec_.name, level, text, elapsedSeconds()});
}

void StageContext::progress(int64_t step, int64_t total, double throughput,
                            const std::string& unit) {
  const double spent =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - stageStart_).count();
  const double eta = step > 0 && total > step ? spent / step * (total - step) : -1.0;
  observer_.onProgress({spec_.name, step, total, eta, throughput, unit});
}

Runner::Runner(Profile profile, const StageRegistry& registry)
    : profile_(std::move(profile)), registry_(registry) {}
Runner::~Runner() = default;

RunResult Runner::run(const std::filesystem::path& runDir, RunObserver& observer,
                      const CancelToken& cancel) {
  RunResult result;
  result.runDir = runDir;
  const auto start = std::chrono::steady_clock::now();
  observer.onRunStart(runDir.string());
  RunState state(profile_);
  for (size_t i = 0; i < profile_.stages.size(); ++i) {
    const StageSpec& spec = profile_.stages[i];
    const int index = static_cast<int>(i);
    observer.onStageStart(index, spec.type, spec.name);
    StageContext ctx(profile_, spec, index, observer, cancel, runDir, state, start);
    RunStatus stageStatus = RunStatus::Finished;
    try {
      cancel.throwIfCancelled();
      const StageType* type = registry_.find(spec.type);
      if (!type) throw InputError("/stages/" + std::to_string(i) + "/type", "unknown stage type");
      type->create()->run(ctx);
    } catch (const Cancelled&) {
      stageStatus = RunStatus::Cancelled;
      result.message = "cancelled in stage " + spec.name;
    } catch (const InputError& e) {
      stageStatus = RunStatus::Failed;
      result.badInput = true;
      result.message = spec.name + ": " + e.what() + (e.hint().empty() ? "" : " (hint: " + e.hint() + ")");
    } catch (const Error& e) {
      stageStatus = RunStatus::Failed;
      result.message = spec.name + ": " + e.what() + (e.hint().empty() ? "" : " (hint: " + e.hint() + ")");
    } catch (const std::exception& e) {
      stageStatus = RunStatus::Failed;
      result.message = spec.name + ": " + e.what();
    }
    if (stageStatus == RunStatus::Failed) ctx.log(result.message, LogLevel::Error);
    observer.onStageEnd(index, spec.name, stageStatus);
    if (stageStatus != RunStatus::Finished) {
      result.status = stageStatus;
      observer.onRunEnd(result.status, result.message);
      return result;
    }
  }
  result.status = RunStatus::Finished;
  observer.onRunEnd(result.status, result.message);
  return result;
}

RunResult runProfile(const Profile& profile, const std::filesystem::path& runsRoot,
                     RunObserver* observer, const CancelToken& cancel,
                     const StageRegistry& registry) {
  const auto dir = RunStore::createRunDir(runsRoot, profile.name);
  RunStore store(dir, profile);
  ObserverFanout fanout;
  fanout.add(&store);
  if (observer) fanout.add(observer);
  Runner runner(profile, registry);
  return runner.run(dir, fanout, cancel);
}

std::filesystem::path defaultRunsRoot() {
  if (const char* env = std::getenv("WB_RUNS_DIR"); env && *env) return env;
  std::filesystem::path base;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    base = xdg;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    base = std::filesystem::path(home) / ".local" / "share";
  } else {
    base = std::filesystem::temp_directory_path();
  }
  return base / "gpt2-workbench" / "runs";
}

}  // namespace wb
