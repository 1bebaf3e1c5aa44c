// Markdown / CSV / JSON printers for benchmark sweeps; see bench_report.h.
#include "core/bench/bench_report.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "core/bench/stats.h"
#include "core/bench/stats_json.h"

#ifndef WB_GIT_COMMIT
#define WB_GIT_COMMIT "unknown"
#endif

namespace wb {

const BenchMetric* BenchPoint::find(const std::string& name) const {
  for (const auto& m : metrics)
    if (m.name == name) return &m;
  return nullptr;
}

std::string buildCommit() {
  return WB_GIT_COMMIT;
}

std::string utcTimestamp() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

// Full precision for machine-readable formats, so CSV and JSON agree exactly.
std::string exact(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Metric names in the order of the first point (every point of a sweep has the same).
std::vector<std::string> metricNames(const std::vector<BenchPoint>& points) {
  std::vector<std::string> names;
  if (!points.empty())
    for (const auto& m : points.front().metrics) names.push_back(m.name);
  return names;
}

}  // namespace

std::string benchMarkdown(const BenchMeta& meta, const std::vector<BenchPoint>& points) {
  std::ostringstream out;
  out << "commit " << meta.commit << " | device " << meta.device << " | LibTorch "
      << meta.torchVersion << " | " << meta.timestamp << "\n\n"
      << "model " << meta.model << ", dtype " << meta.dtype << ", warm-up " << meta.warmup
      << ", repeats " << meta.repeats << ", decode tokens " << meta.decodeTokens
      << ", memory: " << meta.memoryKind << "\n\n";
  const auto names = metricNames(points);
  out << "| batch | seq_len | backend | weights | n |";
  for (const auto& n : names) out << " " << n << " |";
  out << "\n|---:|---:|---|---|---:|";
  for (size_t i = 0; i < names.size(); ++i) out << "---:|";
  out << "\n";
  for (const auto& p : points) {
    const auto* first = p.metrics.empty() ? nullptr : &p.metrics.front();
    out << "| " << p.batch << " | " << p.seqLen << " | " << p.backend << " | " << p.weights << " | "
        << (first ? first->samples.size() : 0) << " |";
    for (const auto& n : names) {
      const auto* m = p.find(n);
      if (!m) {
        out << " |";
        continue;
      }
      const auto s = summarize(m->samples);
      out << " " << formatMeanStd(s, 2) << " |";
    }
    out << "\n";
  }
  return out.str();
}

std::string benchCsv(const BenchMeta& meta, const std::vector<BenchPoint>& points) {
  std::ostringstream out;
  out << "commit,device,torch_version,timestamp,batch,seq_len,backend,weights,metric,n,mean,std,"
         "min,max,"
         "samples\n";
  auto quoted = [](const std::string& s) {
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (const auto& p : points) {
    for (const auto& m : p.metrics) {
      const auto s = summarize(m.samples);
      out << quoted(meta.commit) << "," << quoted(meta.device) << "," << quoted(meta.torchVersion)
          << "," << meta.timestamp << "," << p.batch << "," << p.seqLen << "," << p.backend << ","
          << quoted(p.weights) << "," << m.name << "," << s.n << "," << exact(s.mean) << ","
          << exact(s.std) << "," << exact(s.min) << "," << exact(s.max) << ",";
      for (size_t i = 0; i < m.samples.size(); ++i) out << (i ? ";" : "") << exact(m.samples[i]);
      out << "\n";
    }
  }
  return out.str();
}

nlohmann::json benchJson(const BenchMeta& meta, const std::vector<BenchPoint>& points) {
  nlohmann::json j{{"commit", meta.commit},
                   {"device", meta.device},
                   {"torch_version", meta.torchVersion},
                   {"timestamp", meta.timestamp},
                   {"model", meta.model},
                   {"dtype", meta.dtype},
                   {"memory_kind", meta.memoryKind},
                   {"warmup", meta.warmup},
                   {"repeats", meta.repeats},
                   {"decode_tokens", meta.decodeTokens},
                   {"points", nlohmann::json::array()}};
  for (const auto& p : points) {
    nlohmann::json metrics = nlohmann::json::object();
    for (const auto& m : p.metrics) {
      metrics[m.name] = samplesJson(m.samples);
    }
    j["points"].push_back({{"batch", p.batch},
                           {"seq_len", p.seqLen},
                           {"backend", p.backend},
                           {"weights", p.weights},
                           {"metrics", metrics}});
  }
  return j;
}

}  // namespace wb
