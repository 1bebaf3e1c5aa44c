// JSON form of StatsSummary shared by bench, perf, compare, prune and run summaries.
#include "core/bench/stats_json.h"

#include <vector>

namespace wb {

nlohmann::json statsJson(const StatsSummary& s) {
  return {{"n", s.n},     {"mean", s.mean}, {"std", s.std}, {"min", s.min},
          {"max", s.max}, {"p50", s.p50},   {"p95", s.p95}, {"ci95", s.ci95}};
}

StatsSummary statsFromJson(const nlohmann::json& j) {
  StatsSummary s;
  s.n = j.value("n", int64_t{0});
  s.mean = j.value("mean", 0.0);
  s.std = j.value("std", 0.0);
  s.min = j.value("min", 0.0);
  s.max = j.value("max", 0.0);
  s.p50 = j.value("p50", 0.0);
  s.p95 = j.value("p95", 0.0);
  s.ci95 = j.value("ci95", 0.0);
  return s;
}

nlohmann::json samplesJson(std::span<const double> samples) {
  nlohmann::json j = statsJson(summarize(samples));
  j["samples"] = std::vector<double>(samples.begin(), samples.end());
  return j;
}

}  // namespace wb
