// The GUI's sample model for one run: every (stage, series) as parallel arrays of
// step, run time and value, appended in batches (one signal per batch, not per
// sample). Knows nothing about widgets, and computes no statistics: plots, tables
// and exports read it and use core/bench/stats.h for mean, std and smoothing.
#pragma once

#include <QObject>
#include <QString>
#include <cstdint>
#include <string>
#include <vector>

#include "core/run/events.h"
#include "core/run/run_store.h"

namespace wb::ui {

// One plot per family (DESIGN.md §3 series names: family/what).
enum class MetricFamily { Loss, StepTime, Throughput, Memory, Perplexity, Latency, Other };
inline constexpr int kFamilyCount = 7;

MetricFamily familyOf(const std::string& series);
QString familyTitle(MetricFamily family);  // "Loss", "Time per batch", ...
QString familyKey(MetricFamily family);    // "loss", "step_time", ... (file names)
// Benchmark families repeat a measurement at the same step: the band is the spread
// across repeats, not a rolling window.
bool familyHasRepeats(MetricFamily family);

struct SeriesData {
  std::string stage;
  std::string series;
  MetricFamily family = MetricFamily::Other;
  std::vector<int64_t> steps;
  std::vector<double> times;  // seconds since the run started
  std::vector<double> values;
  QString label() const;  // "stage: series"
};

class MetricStore : public QObject {
  Q_OBJECT
 public:
  explicit MetricStore(QObject* parent = nullptr);

  void append(const std::vector<MetricSample>& batch);
  void clear();

  const std::vector<SeriesData>& series() const { return series_; }
  int find(const std::string& stage, const std::string& series) const;  // -1 if absent
  int64_t totalPoints() const { return static_cast<int64_t>(order_.size()); }
  // The i-th sample in arrival order (what events.jsonl holds, in the same order).
  MetricSample sampleAt(int64_t i) const;

 Q_SIGNALS:
  void seriesAdded(int index);
  void appended(int64_t newPoints);
  void cleared();

 private:
  std::vector<SeriesData> series_;
  // Arrival order as (series index, point index): exports write samples as they came.
  std::vector<std::pair<uint32_t, uint32_t>> order_;
};

// The samples of a run directory's events (RunStore::readEvents), in order.
std::vector<MetricSample> samplesFromEvents(const std::vector<RunEvent>& events);

}  // namespace wb::ui
