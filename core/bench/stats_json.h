// The one JSON shape of a statistic in every report and run file: n, mean, std, min,
// max, p50, p95, ci95, plus the raw samples when there are any. Kept apart from stats.h
// so the many users of the plain statistics do not all parse nlohmann/json.
#pragma once

#include <span>

#include <nlohmann/json.hpp>

#include "core/bench/stats.h"

namespace wb {

nlohmann::json statsJson(const StatsSummary& s);
// The inverse; a missing field reads as 0 (summaries written by older versions).
StatsSummary statsFromJson(const nlohmann::json& j);
// statsJson(summarize(samples)) with the samples themselves under "samples".
nlohmann::json samplesJson(std::span<const double> samples);

}  // namespace wb
