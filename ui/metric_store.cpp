// The GUI's sample model; see metric_store.h.
#include "ui/metric_store.h"

namespace wb::ui {

MetricFamily familyOf(const std::string& s) {
  auto has = [&](const char* part) { return s.find(part) != std::string::npos; };
  auto ends = [&](const char* suffix) { return s.ends_with(suffix); };
  // Order matters: "infer/latency_s" is a latency, not a time per batch, and
  // "eval/loss" is a loss even though evaluation also reports perplexity.
  if (has("latency")) return MetricFamily::Latency;
  if (has("perplexity") || has("ppl")) return MetricFamily::Perplexity;
  if (has("loss")) return MetricFamily::Loss;
  if (s.starts_with("mem/") || has("/mem") || has("mem_") || ends("_mb") || ends("_bytes"))
    return MetricFamily::Memory;
  if (has("per_s") || has("tok_s") || has("throughput")) return MetricFamily::Throughput;
  if (has("time")) return MetricFamily::StepTime;
  return MetricFamily::Other;
}

QString familyTitle(MetricFamily f) {
  switch (f) {
    case MetricFamily::Loss: return QStringLiteral("Loss");
    case MetricFamily::StepTime: return QStringLiteral("Time per batch (s)");
    case MetricFamily::Throughput: return QStringLiteral("Throughput");
    case MetricFamily::Memory: return QStringLiteral("Memory (MB)");
    case MetricFamily::Perplexity: return QStringLiteral("Eval perplexity");
    case MetricFamily::Latency: return QStringLiteral("Benchmark latency (s)");
    case MetricFamily::Other: return QStringLiteral("Other");
  }
  return {};
}

QString familyKey(MetricFamily f) {
  switch (f) {
    case MetricFamily::Loss: return QStringLiteral("loss");
    case MetricFamily::StepTime: return QStringLiteral("step_time");
    case MetricFamily::Throughput: return QStringLiteral("throughput");
    case MetricFamily::Memory: return QStringLiteral("memory");
    case MetricFamily::Perplexity: return QStringLiteral("perplexity");
    case MetricFamily::Latency: return QStringLiteral("latency");
    case MetricFamily::Other: return QStringLiteral("other");
  }
  return {};
}

bool familyHasRepeats(MetricFamily f) { return f == MetricFamily::Latency; }

QString SeriesData::label() const {
  return QString::fromStdString(stage) + QStringLiteral(": ") + QString::fromStdString(series);
}

MetricStore::MetricStore(QObject* parent) : QObject(parent) {}

int MetricStore::find(const std::string& stage, const std::string& series) const {
  for (size_t i = 0; i < series_.size(); ++i)
    if (series_[i].stage == stage && series_[i].series == series) return static_cast<int>(i);
  return -1;
}

void MetricStore::append(const std::vector<MetricSample>& batch) {
  if (batch.empty()) return;
  std::vector<int> added;
  // Batches usually hold runs of the same few series: remember the last lookup.
  int last = -1;
  for (const MetricSample& s : batch) {
    if (last < 0 || series_[last].stage != s.stage || series_[last].series != s.series) {
      last = find(s.stage, s.series);
      if (last < 0) {
        SeriesData d;
        d.stage = s.stage;
        d.series = s.series;
        d.family = familyOf(s.series);
        series_.push_back(std::move(d));
        last = static_cast<int>(series_.size()) - 1;
        added.push_back(last);
      }
    }
    SeriesData& d = series_[last];
    order_.emplace_back(static_cast<uint32_t>(last), static_cast<uint32_t>(d.values.size()));
    d.steps.push_back(s.step);
    d.times.push_back(s.tSeconds);
    d.values.push_back(s.value);
  }
  for (int i : added) Q_EMIT seriesAdded(i);
  Q_EMIT appended(static_cast<int64_t>(batch.size()));
}

void MetricStore::clear() {
  series_.clear();
  order_.clear();
  Q_EMIT cleared();
}

MetricSample MetricStore::sampleAt(int64_t i) const {
  const auto [si, pi] = order_.at(static_cast<size_t>(i));
  const SeriesData& d = series_[si];
  return {d.stage, d.series, d.steps[pi], d.values[pi], d.times[pi]};
}

std::vector<MetricSample> samplesFromEvents(const std::vector<RunEvent>& events) {
  std::vector<MetricSample> out;
  for (const RunEvent& e : events) {
    if (e.kind != "sample") continue;
    const auto& d = e.data;
    out.push_back({d.value("stage", ""), d.value("series", ""), d.value("step", int64_t{0}),
                   d.value("value", 0.0), d.value("t", 0.0)});
  }
  return out;
}

}  // namespace wb::ui
