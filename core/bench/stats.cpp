// Statistics for benchmark points and metric series; see stats.h.
#include "core/bench/stats.h"

#include <algorithm>
#include <cmath>
#include <deque>

namespace wb {

void Welford::add(double x) {
  ++n_;
  if (n_ == 1) {
    min_ = max_ = x;
  } else {
    min_ = std::min(min_, x);
    max_ = std::max(max_, x);
  }
  const double delta = x - mean_;
  mean_ += delta / static_cast<double>(n_);
  m2_ += delta * (x - mean_);
}

double Welford::variance() const { return n_ < 2 ? 0.0 : m2_ / static_cast<double>(n_ - 1); }
double Welford::stddev() const { return std::sqrt(variance()); }

double quantile(std::span<const double> values, double q) {
  if (values.empty()) return 0.0;
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

double studentT975(int64_t dof) {
  // Exact table for small dof (where it matters), then the Cornish-Fisher expansion,
  // which is within 1e-4 of the exact value from dof = 31 on.
  static const double kTable[] = {0,      12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469,
                                  2.3646, 2.3060,  2.2622, 2.2281, 2.2010, 2.1788, 2.1604,
                                  2.1448, 2.1314,  2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                                  2.0796, 2.0739,  2.0687, 2.0639, 2.0595, 2.0555, 2.0518,
                                  2.0484, 2.0452,  2.0423};
  if (dof <= 0) return 0.0;
  if (dof <= 30) return kTable[dof];
  const double z = 1.959963984540054;
  const double n = static_cast<double>(dof);
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
  return z + (z3 + z) / (4 * n) + (5 * z5 + 16 * z3 + 3 * z) / (96 * n * n) +
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * n * n * n);
}

StatsSummary summarize(std::span<const double> values) {
  StatsSummary s;
  Welford w;
  for (double x : values) w.add(x);
  s.n = w.count();
  if (s.n == 0) return s;
  s.mean = w.mean();
  s.std = w.stddev();
  s.min = w.min();
  s.max = w.max();
  s.p50 = quantile(values, 0.5);
  s.p95 = quantile(values, 0.95);
  s.ci95 = s.n >= 2 ? studentT975(s.n - 1) * s.std / std::sqrt(static_cast<double>(s.n)) : 0.0;
  return s;
}

std::vector<double> debiasedEma(std::span<const double> values, double weight) {
  std::vector<double> out;
  out.reserve(values.size());
  double last = 0.0;
  double debias = 1.0;
  for (double x : values) {
    last = last * weight + (1.0 - weight) * x;
    debias *= weight;
    out.push_back(debias < 1.0 ? last / (1.0 - debias) : x);
  }
  return out;
}

void rollingMeanStd(std::span<const double> values, int window, std::vector<double>& mean,
                    std::vector<double>& std) {
  mean.assign(values.size(), 0.0);
  std.assign(values.size(), 0.0);
  window = std::max(window, 1);
  // Running sums over a sliding window; values are shifted by the first one so the
  // sum of squares does not cancel catastrophically for large offsets.
  const double shift = values.empty() ? 0.0 : values[0];
  double sum = 0.0, sumSq = 0.0;
  for (size_t i = 0; i < values.size(); ++i) {
    const double x = values[i] - shift;
    sum += x;
    sumSq += x * x;
    if (i >= static_cast<size_t>(window)) {
      const double old = values[i - window] - shift;
      sum -= old;
      sumSq -= old * old;
    }
    const double n = static_cast<double>(std::min<size_t>(i + 1, window));
    const double m = sum / n;
    mean[i] = m + shift;
    std[i] = n > 1 ? std::sqrt(std::max(0.0, (sumSq - n * m * m) / (n - 1))) : 0.0;
  }
}

std::vector<double> rollingNoiseStd(std::span<const double> values, int window) {
  std::vector<double> out(values.size(), 0.0);
  if (values.size() < 3) return out;
  std::vector<double> diffs(values.size() - 1);
  for (size_t i = 1; i < values.size(); ++i) diffs[i - 1] = values[i] - values[i - 1];
  std::vector<double> mean, std;
  // `window` points hold window-1 differences.
  rollingMeanStd(diffs, std::max(window - 1, 2), mean, std);
  for (size_t i = 1; i < values.size(); ++i) out[i] = std[i - 1] / std::sqrt(2.0);
  return out;
}

}  // namespace wb
