// JSON / Markdown printers for perf results; see perf_report.h.
#include "core/bench/perf_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include "core/bench/stats.h"
#include "core/bench/stats_json.h"
#include "core/io/atomic_file.h"

namespace wb {
namespace {

// Enough digits for any figure in these tables (µs, TFLOP/s, tokens/s, MB).
int digitsFor(double v) {
  const double a = std::fabs(v);
  return a >= 1000 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 4;
}

std::string cell(const nlohmann::json& v) {
  if (v.is_number_float()) return formatFixed(v.get<double>(), digitsFor(v.get<double>()));
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

nlohmann::json perfJson(const PerfResult& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json metrics = nlohmann::json::object();
    for (const auto& m : row.metrics) {
      metrics[m.name] = samplesJson(m.samples);
    }
    rows.push_back({{"label", row.label}, {"metrics", metrics}, {"values", row.values}});
  }
  return {{"kind", r.kind},
          {"command", r.env.command},
          {"device", r.env.device},
          {"device_name", r.env.deviceName},
          {"driver", r.env.driver},
          {"torch_version", r.env.torchVersion},
          {"cuda_version", r.env.cudaVersion},
          {"commit", r.env.commit},
          {"timestamp", r.env.timestamp},
          {"config", r.config},
          {"rows", rows},
          {"summary", r.summary},
          {"warnings", r.warnings}};
}

std::string perfMarkdown(const PerfResult& r) {
  std::ostringstream out;
  out << "### perf " << r.kind << "\n\n"
      << "device " << r.env.device << " (" << r.env.deviceName << ", driver " << r.env.driver
      << ") | LibTorch " << r.env.torchVersion << " | CUDA " << r.env.cudaVersion << " | commit "
      << r.env.commit << " | " << r.env.timestamp << "\n\n"
      << "`" << r.env.command << "`\n\n";
  if (!r.config.empty()) {
    out << "config:";
    for (const auto& [k, v] : r.config.items()) out << " " << k << "=" << cell(v);
    out << "\n\n";
  }
  // Columns: the union of metric names and value keys, in first-seen order.
  std::vector<std::string> metricCols, valueCols;
  std::set<std::string> seen;
  for (const auto& row : r.rows) {
    for (const auto& m : row.metrics)
      if (seen.insert("m:" + m.name).second) metricCols.push_back(m.name);
    for (const auto& [k, v] : row.values.items())
      if (seen.insert("v:" + k).second) valueCols.push_back(k);
  }
  out << "| what | n |";
  for (const auto& c : metricCols) out << " " << c << " (mean ± std) |";
  for (const auto& c : valueCols) out << " " << c << " |";
  out << "\n|---|---:|";
  for (size_t i = 0; i < metricCols.size() + valueCols.size(); ++i) out << "---:|";
  out << "\n";
  for (const auto& row : r.rows) {
    size_t n = 0;
    for (const auto& m : row.metrics) n = std::max(n, m.samples.size());
    out << "| " << row.label << " | " << n << " |";
    for (const auto& c : metricCols) {
      const BenchMetric* m = nullptr;
      for (const auto& x : row.metrics)
        if (x.name == c) m = &x;
      if (!m || m->samples.empty()) {
        out << " |";
        continue;
      }
      const auto s = summarize(m->samples);
      const int d = digitsFor(s.mean);
      out << " " << formatMeanStd(s, d) << " |";
    }
    for (const auto& c : valueCols)
      out << " " << (row.values.contains(c) ? cell(row.values[c]) : "") << " |";
    out << "\n";
  }
  if (!r.summary.empty()) {
    out << "\n";
    for (const auto& [k, v] : r.summary.items()) out << "- " << k << ": " << cell(v) << "\n";
  }
  for (const auto& w : r.warnings) out << "\n**warning:** " << w << "\n";
  return out.str();
}

std::vector<std::string> writePerfResult(const PerfResult& r, const std::string& path) {
  std::filesystem::path json = path;
  if (std::filesystem::is_directory(json)) json /= "perf-" + r.kind + ".json";
  std::filesystem::path md = json;
  md.replace_extension(".md");
  writeFileAtomic(json, perfJson(r).dump(2) + "\n");
  writeFileAtomic(md, perfMarkdown(r));
  return {json.string(), md.string()};
}

std::string joinCommandLine(int argc, const char* const* argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i) s += ' ';
    s += a.find_first_of(" \t\"'") == std::string::npos ? a : "'" + a + "'";
  }
  return s;
}

}  // namespace wb
