// Benchmark results as plain data and one printer per output format, as llama-bench
// does: Markdown (cells "mean ± std"), CSV (one row per point and metric, raw samples
// kept) and JSON (everything). Measuring lives in benchmark.h; nothing here times.
// Torch-free so the GUI and tests can print and read results.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wb {

struct BenchMetric {
  std::string name;  // "prefill_ms", ...
  std::vector<double> samples;  // one per repeat, after warm-up
};

struct BenchPoint {
  int64_t batch = 1, seqLen = 0;
  std::string backend;  // math, flash, sdpa
  std::string weights;  // "fp32", "int8 (dequantized fp32)", ...
  std::vector<BenchMetric> metrics;
  const BenchMetric* find(const std::string& name) const;
};

struct BenchMeta {
  std::string commit, device, torchVersion, timestamp, model, dtype, memoryKind;
  int64_t warmup = 0, repeats = 0, decodeTokens = 0;
};

// The build's `git rev-parse --short HEAD` at configure time, or "unknown".
std::string buildCommit();
// UTC, ISO 8601 ("2026-11-26T10:52:56Z").
std::string utcTimestamp();

std::string benchMarkdown(const BenchMeta& meta, const std::vector<BenchPoint>& points);
std::string benchCsv(const BenchMeta& meta, const std::vector<BenchPoint>& points);
nlohmann::json benchJson(const BenchMeta& meta, const std::vector<BenchPoint>& points);

}  // namespace wb
