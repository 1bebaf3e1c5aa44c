// Benchmark statistics computed once in core and reused by plots, tables and
// reports: Welford mean/variance, sample std (n-1), min/max, quantiles, a 95%
// Student-t confidence interval, and TensorBoard's debiased EMA (display only).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace wb {

class Welford {
 public:
  void add(double x);
  int64_t count() const { return n_; }
  double mean() const { return mean_; }
  double variance() const;  // sample variance (n-1); 0 when n < 2
  double stddev() const;
  double min() const { return min_; }
  double max() const { return max_; }

 private:
  int64_t n_ = 0;
  double mean_ = 0.0, m2_ = 0.0, min_ = 0.0, max_ = 0.0;
};

struct StatsSummary {
  int64_t n = 0;
  double mean = 0, std = 0, min = 0, max = 0, p50 = 0, p95 = 0;
  double ci95 = 0;  // half-width of the 95% confidence interval of the mean
};

StatsSummary summarize(std::span<const double> values);
// Linear-interpolated quantile (numpy's default), q in [0, 1]; values need not be sorted.
double quantile(std::span<const double> values, double q);
// Two-sided 97.5% quantile of Student's t with `dof` degrees of freedom.
double studentT975(int64_t dof);
// TensorBoard's smoothing: ema_i = w*ema_{i-1} + (1-w)*x_i, divided by 1 - w^(i+1).
std::vector<double> debiasedEma(std::span<const double> values, double weight);
// Rolling mean and sample std over the last `window` points (fewer at the start).
void rollingMeanStd(std::span<const double> values, int window, std::vector<double>& mean,
                    std::vector<double>& std);
// Rolling noise level that a trend does not inflate: the sample std of the first
// differences over the last `window` points, divided by sqrt(2) (for independent noise
// of std s, x_i - x_{i-1} has std s*sqrt(2)). A linear trend gives exactly 0, where the
// plain rolling std of a falling loss curve would mostly measure the fall.
std::vector<double> rollingNoiseStd(std::span<const double> values, int window);

}  // namespace wb
