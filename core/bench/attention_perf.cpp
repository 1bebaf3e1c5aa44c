// Attention kernel benchmark; see attention_perf.h.
#include "core/bench/attention_perf.h"

#include <cmath>
#include <sstream>

#include "core/bench/bench_report.h"
#include "core/errors.h"
#include "core/kernels_bridge/flash_attention_cuda.h"
#include "core/torch_compat.h"

namespace wb {

double attentionForwardFlops(int64_t batch, int64_t heads, int64_t seqLen, int64_t headDim, bool causal) {
  const double f = 4.0 * static_cast<double>(batch) * static_cast<double>(heads) * static_cast<double>(seqLen) *
                   static_cast<double>(seqLen) * static_cast<double>(headDim);
  return causal ? f / 2.0 : f;
}

nlohmann::json AttentionPerfResult::toJson() const {
  nlohmann::json j;
  j["device"] = device;
  j["torch"] = torchVersion;
  j["commit"] = commit;
  j["timestamp"] = timestamp;
  const auto& o = options;
  j["shape"] = {{"batch", o.batch}, {"heads", o.heads}, {"seq_len", o.seqLen}, {"head_dim", o.headDim},
                {"causal", o.causal}, {"dtype", o.dtype}};
  j["warmup"] = o.warmup;
  j["repeats"] = o.repeats;
  j["inner"] = o.inner;
  j["fwd_ratio"] = fwdRatio;
  j["bwd_ratio"] = bwdRatio;
  j["max_rel_diff_out"] = maxRelDiffOut;
  auto& arr = j["rows"] = nlohmann::json::array();
  for (const auto& r : rows)
    arr.push_back({{"impl", r.impl},
                   {"pass", r.pass},
                   {"variant", r.variant},
                   {"ms_mean", r.ms.mean},
                   {"ms_std", r.ms.std},
                   {"n", r.ms.n},
                   {"tflops", r.tflops},
                   {"tflops_std", r.tflopsStd},
                   {"samples_ms", r.samplesMs}});
  return j;
}

std::string AttentionPerfResult::markdown() const {
  std::ostringstream s;
  const auto& o = options;
  s << "attention B=" << o.batch << " H=" << o.heads << " T=" << o.seqLen << " D=" << o.headDim << " "
    << (o.causal ? "causal" : "full") << " " << o.dtype << " on " << device << " (LibTorch " << torchVersion
    << ", commit " << commit << ", " << timestamp << ")\n\n";
  s << "| impl | pass | variant | ms (mean ± std, n) | TFLOP/s |\n|---|---|---|---|---|\n";
  s.setf(std::ios::fixed);
  for (const auto& r : rows) {
    s.precision(4);
    s << "| " << r.impl << " | " << r.pass << " | " << r.variant << " | " << r.ms.mean << " ± " << r.ms.std << " (n="
      << r.ms.n << ") | ";
    s.precision(1);
    s << r.tflops << " ± " << r.tflopsStd << " |\n";
  }
  s.precision(3);
  s << "\nwb-flash / sdpa-flash TFLOP/s: fwd " << fwdRatio << "x, bwd " << bwdRatio << "x; ‖O_wb − O_sdpa‖/‖O_sdpa‖ = ";
  s.unsetf(std::ios::fixed);
  s << maxRelDiffOut << "\n";
  return s.str();
}

// SDPA's flash entry points are public API from LibTorch 2.1 (core/torch_compat.h).
#if defined(WB_HAVE_KERNELS) && defined(WB_WITH_CUDA) && WB_TORCH_AT_LEAST(2, 1)

namespace {

void cudaCheck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw RunError("perf attention", std::string(what) + ": " + cudaGetErrorString(e));
}

// One sample = `inner` back-to-back calls between two events on the current stream.
template <typename F>
std::vector<double> timeSamples(F&& fn, const AttentionPerfOptions& o, const torch::Device& dev) {
  const auto stream = compat::currentCudaStream(dev);
  cudaEvent_t start, stop;
  cudaCheck(cudaEventCreate(&start), "cudaEventCreate");
  cudaCheck(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> out;
  for (int r = 0; r < o.warmup + o.repeats; ++r) {
    cudaCheck(cudaEventRecord(start, stream), "cudaEventRecord");
    for (int i = 0; i < o.inner; ++i) fn();
    cudaCheck(cudaEventRecord(stop, stream), "cudaEventRecord");
    cudaCheck(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    cudaCheck(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    if (r >= o.warmup) out.push_back(static_cast<double>(ms) / o.inner);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return out;
}

AttentionPerfRow makeRow(std::string impl, std::string pass, int variant, std::vector<double> ms, double flops) {
  AttentionPerfRow r;
  r.impl = std::move(impl);
  r.pass = std::move(pass);
  r.variant = variant;
  r.samplesMs = std::move(ms);
  r.ms = summarize(r.samplesMs);
  std::vector<double> tf;
  for (double m : r.samplesMs) tf.push_back(flops / (m * 1e-3) / 1e12);
  const auto ts = summarize(tf);
  r.tflops = ts.mean;
  r.tflopsStd = ts.std;
  return r;
}

}  // namespace

AttentionPerfResult runAttentionPerf(const AttentionPerfOptions& o) {
  if (!compat::cudaAvailable()) throw RunError("perf attention", "no CUDA device");
  if (o.dtype != "bf16" && o.dtype != "fp16") throw InputError("perf attention", "dtype must be bf16 or fp16");
  if (o.repeats < 2 || o.inner < 1 || o.warmup < 0)
    throw InputError("perf attention", "need repeats >= 2, inner >= 1, warmup >= 0");
  AttentionPerfResult res;
  res.options = o;
  const torch::Device dev(torch::kCUDA, static_cast<c10::DeviceIndex>(o.device));
  cudaDeviceProp prop{};
  cudaCheck(cudaGetDeviceProperties(&prop, o.device), "cudaGetDeviceProperties");
  res.device = prop.name;
  res.torchVersion = compat::torchVersion();
  res.commit = buildCommit();
  res.timestamp = utcTimestamp();
  torch::NoGradGuard noGrad;
  torch::manual_seed(o.seed);
  const auto opts = torch::TensorOptions().device(dev).dtype(o.dtype == "bf16" ? torch::kBFloat16 : torch::kHalf);
  const auto shape = std::vector<int64_t>{o.batch, o.heads, o.seqLen, o.headDim};
  const auto q = torch::randn(shape, opts), k = torch::randn(shape, opts), v = torch::randn(shape, opts);
  const auto dout = torch::randn(shape, opts);
  const double scale = 1.0 / std::sqrt(static_cast<double>(o.headDim));
  const double flops = attentionForwardFlops(o.batch, o.heads, o.seqLen, o.headDim, o.causal);

  const auto sdpa = compat::sdpaFlashForward(q, k, v, o.causal, scale);
  res.rows.push_back(makeRow("sdpa-flash", "fwd", 0,
                             timeSamples([&] { compat::sdpaFlashForward(q, k, v, o.causal, scale); }, o, dev), flops));
  res.rows.push_back(makeRow(
      "sdpa-flash", "bwd", 0,
      timeSamples([&] { compat::sdpaFlashBackward(dout, q, k, v, sdpa, o.causal, scale); }, o, dev), 2.5 * flops));

  const int fwdVariants = o.variants ? flashForwardVariants() : 1;
  const int bwdVariants = o.variants ? flashBackwardVariants() : 1;
  const auto ours = flashAttentionForward(q, k, v, scale, o.causal);
  for (int var = 0; var < fwdVariants; ++var)
    res.rows.push_back(makeRow("wb-flash", "fwd", var,
                               timeSamples([&] { flashAttentionForward(q, k, v, scale, o.causal, var); }, o, dev),
                               flops));
  for (int var = 0; var < bwdVariants; ++var)
    res.rows.push_back(makeRow(
        "wb-flash", "bwd", var,
        timeSamples([&] { flashAttentionBackward(dout, q, k, v, ours.out, ours.lse, scale, o.causal, var); }, o, dev),
        2.5 * flops));
  auto find = [&](const char* impl, const char* pass) {
    for (const auto& r : res.rows)
      if (r.impl == impl && r.pass == pass && r.variant == 0) return r.tflops;
    return 0.0;
  };
  res.fwdRatio = find("wb-flash", "fwd") / find("sdpa-flash", "fwd");
  res.bwdRatio = find("wb-flash", "bwd") / find("sdpa-flash", "bwd");
  const auto a = ours.out.to(torch::kFloat32), b = sdpa.out.to(torch::kFloat32);
  res.maxRelDiffOut = ((a - b).norm() / b.norm()).item<double>();
  return res;
}

#else

AttentionPerfResult runAttentionPerf(const AttentionPerfOptions&) {
  throw RunError("perf attention", "built without CUDA kernels (or LibTorch < 2.1 without SDPA flash)",
                 "build against CUDA LibTorch >= 2.1 with nvcc (cmake --preset cuda) and run on a GPU");
}

#endif

}  // namespace wb
