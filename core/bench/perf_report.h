// Results of `gpt2-bench perf ...` (train, decode, matmul, attention) as plain data,
// with a JSON and a Markdown printer. Every result carries its environment (device,
// driver, LibTorch and CUDA versions, commit, UTC date, the command line) so a figure
// copied into docs/PERF.md keeps its provenance. Torch-free; nothing here measures.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/bench/bench_report.h"

namespace wb {

struct PerfEnv {
  std::string command;      // the command line as run
  std::string device;       // "cuda:0" or "cpu (N threads)"
  std::string deviceName;   // "NVIDIA H100 80GB HBM3", or the CPU
  std::string driver;       // NVIDIA driver version, or "n/a"
  std::string torchVersion, cudaVersion, commit, timestamp;
};

struct PerfRow {
  std::string label;                 // e.g. "eager", "cuda graph", "8192x8192x8192"
  std::vector<BenchMetric> metrics;  // repeated measurements: shown as mean ± sample std
  nlohmann::json values = nlohmann::json::object();  // single figures (MFU, memory, ...)
};

struct PerfResult {
  std::string kind;  // "train", "decode", "matmul", "attention"
  PerfEnv env;
  nlohmann::json config = nlohmann::json::object();  // what was measured (sizes, dtype, ...)
  std::vector<PerfRow> rows;
  nlohmann::json summary = nlohmann::json::object();  // cross-row figures (speed-ups, peak)
  std::vector<std::string> warnings;
};

nlohmann::json perfJson(const PerfResult& result);
std::string perfMarkdown(const PerfResult& result);
// Writes `path` (JSON) and the same name with .md (Markdown); returns both paths. A
// path that is an existing folder gets perf-<kind>.json inside it.
std::vector<std::string> writePerfResult(const PerfResult& result, const std::string& path);
// The command line as one string, arguments with spaces quoted.
std::string joinCommandLine(int argc, const char* const* argv);

}  // namespace wb
