// Plain value types that flow from a running profile to its observers (run store,
// GUI, CLI). No LibTorch and no Qt here: these cross every layer boundary.
#pragma once

#include <cstdint>
#include <string>

namespace wb {

// One measured value. Series names are `family/what`, e.g. `train/loss`,
// `train/step_time_s`, `mem/rss_mb`, `eval/perplexity`, `infer/latency_s`.
struct MetricSample {
  std::string stage;  // stage name as in the profile, e.g. "pretrain"
  std::string series;
  int64_t step = 0;
  double value = 0.0;
  double tSeconds = 0.0;  // seconds since the run started
};

enum class LogLevel { Info, Warning, Error };

struct LogLine {
  std::string stage;
  LogLevel level = LogLevel::Info;
  std::string text;
  double tSeconds = 0.0;
};

struct Progress {
  std::string stage;
  int64_t step = 0;
  int64_t total = 0;
  double etaSeconds = -1.0;  // < 0: unknown
  double throughput = 0.0;
  std::string throughputUnit;  // "tok/s", "samples/s"
};

enum class RunStatus { Running, Finished, Failed, Cancelled, Interrupted };

const char* toString(RunStatus status);
RunStatus runStatusFromString(const std::string& text);
const char* toString(LogLevel level);

}  // namespace wb
