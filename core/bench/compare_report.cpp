// Printers for the teacher / baseline / student comparison; see compare_report.h.
#include "core/bench/compare_report.h"

#include <cstdio>
#include <sstream>

#include "core/bench/stats.h"
#include "core/bench/stats_json.h"

namespace wb {
namespace {

std::string meanStd(const std::vector<double>& samples, double factor, int digits) {
  if (samples.empty()) return "–";
  return formatMeanStd(summarize(samples), digits, factor);
}

}  // namespace

std::vector<double> throughputSamples(const CompareMeta& meta, const CompareRow& row) {
  std::vector<double> out;
  const double tokens = static_cast<double>(meta.batch * meta.seqLen);
  for (double s : row.latencySeconds) out.push_back(s > 0 ? tokens / s : 0.0);
  return out;
}

std::string compareMarkdown(const CompareMeta& meta, const std::vector<CompareRow>& rows) {
  std::ostringstream out;
  out << "commit " << meta.commit << " | device " << meta.device << " | LibTorch "
      << meta.torchVersion << " | " << meta.timestamp << "\n\n"
      << "dtype " << meta.dtype << "; validation: " << meta.valSource << " (" << meta.evalWindows
      << " windows max); latency: one forward of batch " << meta.batch << " x " << meta.seqLen
      << " tokens, warm-up " << meta.warmup << ", n = " << meta.repeats
      << "; memory: " << meta.memoryKind << "\n\n";
  out << "| model | source | layers | parameters | MB | val loss | perplexity | latency ms | "
         "tokens/s | peak MB |\n"
      << "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    out << "| " << r.role << " | " << r.source << " | " << r.layers << " | " << r.params << " | "
        << formatFixed(static_cast<double>(r.bytes) / (1024.0 * 1024.0), 1) << " | "
        << formatFixed(r.valLoss, 4) << " | " << formatFixed(r.perplexity, 2) << " | "
        << meanStd(r.latencySeconds, 1e3, 3) << " | " << meanStd(throughputSamples(meta, r), 1.0, 0)
        << " | " << formatFixed(r.peakMb, 1) << " |\n";
  }
  return out.str();
}

nlohmann::json compareJson(const CompareMeta& meta, const std::vector<CompareRow>& rows) {
  nlohmann::json j = {{"commit", meta.commit},
                      {"device", meta.device},
                      {"torch", meta.torchVersion},
                      {"timestamp", meta.timestamp},
                      {"dtype", meta.dtype},
                      {"memory_kind", meta.memoryKind},
                      {"val_source", meta.valSource},
                      {"batch", meta.batch},
                      {"seq_len", meta.seqLen},
                      {"warmup", meta.warmup},
                      {"repeats", meta.repeats},
                      {"eval_windows", meta.evalWindows},
                      {"models", nlohmann::json::array()}};
  for (const auto& r : rows)
    j["models"].push_back({{"role", r.role},
                           {"source", r.source},
                           {"layers", r.layers},
                           {"params", r.params},
                           {"bytes", r.bytes},
                           {"val_loss", r.valLoss},
                           {"perplexity", r.perplexity},
                           {"val_tokens", r.valTokens},
                           {"latency_s", samplesJson(r.latencySeconds)},
                           {"tokens_per_s", samplesJson(throughputSamples(meta, r))},
                           {"peak_mb", r.peakMb}});
  return j;
}

}  // namespace wb
