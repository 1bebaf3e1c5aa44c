// The teacher / baseline / student comparison as plain data and its printers: one
// Markdown table (cells "mean ± std" with n), and JSON with the raw timing samples.
// Measuring lives in the compare stage (core/stages/compare_stage.cpp); this file never
// times anything. Torch-free, so the GUI and tests can print and read results.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace wb {

struct CompareRow {
  std::string role;    // "teacher", "baseline (from scratch)", "distilled student"
  std::string source;  // where the model came from ("distill stage \"distill\"", a folder, ...)
  int64_t layers = 0, params = 0, bytes = 0;
  double valLoss = 0.0, perplexity = 0.0;
  int64_t valTokens = 0;
  std::vector<double> latencySeconds;  // one forward of [batch, seqLen] per sample, after warm-up
  double peakMb = 0.0;                 // weights + the forward pass's peak allocation
};

struct CompareMeta {
  std::string commit, device, torchVersion, timestamp, dtype, memoryKind, valSource;
  int64_t batch = 1, seqLen = 0, warmup = 0, repeats = 0, evalWindows = 0;
};

// Tokens per second of each latency sample: batch * seqLen / seconds.
std::vector<double> throughputSamples(const CompareMeta& meta, const CompareRow& row);

std::string compareMarkdown(const CompareMeta& meta, const std::vector<CompareRow>& rows);
nlohmann::json compareJson(const CompareMeta& meta, const std::vector<CompareRow>& rows);

}  // namespace wb
