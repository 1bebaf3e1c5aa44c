// GEMM peak measurement; see perf_matmul.h.
#include "core/bench/perf_matmul.h"

#include "core/bench/perf_device.h"
#include "core/bench/perf_env.h"
#include "core/bench/stats.h"
#include "core/bench/timer.h"
#include "core/errors.h"
#include "core/model/generate.h"
#include "core/run/run_state.h"

namespace wb {

PerfResult runMatmulPerf(const MatmulPerfOptions& o) {
  if (o.sizes.empty() || o.repeats < 1 || o.inputSets < 1)
    throw InputError("perf matmul", "needs at least one size, repeats >= 1 and input sets >= 1");
  const auto device = parsePerfDevice(o.device);
  const auto dtype = parseDtype(o.dtype, "--dtype");
  PerfResult r;
  r.kind = "matmul";
  r.env = perfEnvironment(o.device, o.command);
  r.config = {{"dtype", o.dtype}, {"sizes", o.sizes}, {"warmup", o.warmup}, {"repeats", o.repeats},
              {"input_sets", o.inputSets}, {"timing", device.is_cuda() ? "cuda events" : "steady_clock"}};
  torch::NoGradGuard noGrad;
  double peak = 0.0;
  int64_t peakSize = 0;
  for (int64_t n : o.sizes) {
    if (n < 1) throw InputError("--sizes", "matrix sizes must be >= 1");
    const auto opts = torch::TensorOptions().dtype(dtype).device(device);
    // Random data, never zeros: products of zeros can run faster than real ones.
    std::vector<torch::Tensor> a, b;
    for (int64_t i = 0; i < o.inputSets; ++i) {
      a.push_back(torch::randn({n, n}, opts));
      b.push_back(torch::randn({n, n}, opts));
    }
    auto c = torch::empty({n, n}, opts);
    int64_t k = 0;
    const auto seconds = timeRepeated(device, o.warmup, o.repeats, [&] {
      const auto i = static_cast<size_t>(k++ % o.inputSets);
      torch::mm_out(c, a[i], b[i]);
    });
    PerfRow row;
    row.label = std::to_string(n) + "x" + std::to_string(n) + "x" + std::to_string(n);
    BenchMetric tflops{"tflops", {}}, ms{"ms", {}};
    const double flop = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
    for (double s : seconds) {
      tflops.samples.push_back(flop / s * 1e-12);
      ms.samples.push_back(s * 1e3);
    }
    const double median = quantile(tflops.samples, 0.5);
    row.values["median_tflops"] = median;
    row.metrics = {tflops, ms};
    r.rows.push_back(std::move(row));
    if (median > peak) {
      peak = median;
      peakSize = n;
    }
  }
  synchronize(device);
  r.summary["peak_tflops"] = peak;
  r.summary["peak_size"] = peakSize;
  return r;
}

}  // namespace wb
