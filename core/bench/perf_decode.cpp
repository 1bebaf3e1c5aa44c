// Decode latency, eager vs CUDA graph; see perf_decode.h.
#include "core/bench/perf_decode.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/bench/memory_probe.h"
#include "core/bench/perf_device.h"
#include "core/bench/stats.h"
#include "core/bench/timer.h"
#include "core/errors.h"
#include "core/model/graph_decode.h"
#include "core/run/run_state.h"

namespace wb {

PerfResult runDecodePerf(const DecodePerfOptions& o) {
  if (o.repeats < 2 || o.newTokens < 2 || o.promptLength < 1)
    throw InputError("perf decode", "needs repeats >= 2, new tokens >= 2 and a prompt of >= 1 token");
  const auto device = parsePerfDevice(o.device);
  const auto dtype = parseDtype(o.dtype, "--dtype");
  const Gpt2Config cfg = o.model.config();
  const int64_t capacity = o.promptLength + o.newTokens + 1;
  if (capacity > cfg.nPositions) throw InputError("perf decode", "prompt + new tokens exceed n_positions");

  PerfResult r;
  r.kind = "decode";
  r.env = perfEnvironment(o.device, o.command);
  r.config = {{"model", o.model.toJson()}, {"dtype", o.dtype},       {"batch", 1},
              {"prompt_tokens", o.promptLength}, {"new_tokens", o.newTokens}, {"warmup", o.warmup},
              {"repeats", o.repeats}, {"eager_attention", o.attention},
              {"timing", device.is_cuda() ? "cuda events around the decode steps" : "steady_clock"}};

  torch::manual_seed(static_cast<int64_t>(o.seed));
  Gpt2 model(cfg);
  model->to(device, dtype);
  model->eval();
  model->setAttentionBackend(parseAttentionBackend(o.attention, "--attention"));
  torch::NoGradGuard noGrad;
  auto gen = at::detail::createCPUGenerator(o.seed);
  const auto promptT = torch::randint(cfg.vocabSize, {o.promptLength}, gen, torch::kLong);
  const std::vector<int64_t> prompt(promptT.data_ptr<int64_t>(), promptT.data_ptr<int64_t>() + o.promptLength);
  const auto ids = promptT.unsqueeze(0).to(device);
  const auto opts = model->parameters().front().options();

  // Eager: prefill untimed, then newTokens single-token forwards with the argmax kept
  // on the device, timed as one block.
  torch::Tensor eagerTokens;
  DeviceTimer timer(device);
  auto eagerRun = [&](bool timed) {
    KvCache cache = model->makeCache(1, capacity, opts);
    auto logits = model->forward(ids, &cache);
    auto next = logits.select(1, o.promptLength - 1).argmax(-1, true);
    std::vector<torch::Tensor> out{next};
    if (timed) timer.start();
    for (int64_t i = 0; i < o.newTokens; ++i) {
      logits = model->forward(next, &cache);
      next = logits.select(1, 0).argmax(-1, true);
      out.push_back(next);
    }
    if (timed) timer.stop();
    eagerTokens = torch::cat(out, 1);
    return timed ? timer.seconds() : 0.0;
  };
  BenchMetric eagerUs{"us_per_token", {}};
  for (int64_t i = 0; i < o.warmup; ++i) eagerRun(false);
  for (int64_t i = 0; i < o.repeats; ++i) eagerUs.samples.push_back(eagerRun(true) * 1e6 / static_cast<double>(o.newTokens));
  PerfRow eager;
  eager.label = "eager (KV cache)";
  eager.metrics = {eagerUs, {"tokens_per_s", {}}};
  for (double us : eagerUs.samples) eager.metrics[1].samples.push_back(1e6 / us);
  const auto eagerCpu = eagerTokens.to(torch::kCPU).view({-1});

  if (!device.is_cuda()) {
    r.rows.push_back(std::move(eager));
    r.warnings.push_back("cuda graph decode needs a CUDA device: eager only");
    return r;
  }
  resetPeakMemory(device);
  GraphDecoder graph(model, capacity);
  BenchMetric graphUs{"us_per_token", {}};
  auto graphRun = [&](bool timed) {
    graph.prefill(prompt);
    if (timed) timer.start();
    graph.replay(o.newTokens);
    if (timed) timer.stop();
    return timed ? timer.seconds() : 0.0;
  };
  for (int64_t i = 0; i < o.warmup; ++i) graphRun(false);
  for (int64_t i = 0; i < o.repeats; ++i) graphUs.samples.push_back(graphRun(true) * 1e6 / static_cast<double>(o.newTokens));
  const auto graphTokens = graph.generated();
  PerfRow g;
  g.label = "cuda graph (static KV cache)";
  g.metrics = {graphUs, {"tokens_per_s", {}}};
  for (double us : graphUs.samples) g.metrics[1].samples.push_back(1e6 / us);
  const auto mem = probeMemory(device);
  g.values["mem_peak_mb"] = mem.cudaPeakMb;
  g.values["device_used_mb"] = nvmlUsedText(mem.nvml);

  // Token-for-token agreement of the two paths over the whole timed sequence.
  int64_t agree = 0;
  const auto n = std::min<int64_t>(eagerCpu.numel(), static_cast<int64_t>(graphTokens.size()));
  while (agree < n && eagerCpu[agree].item<int64_t>() == graphTokens[static_cast<size_t>(agree)]) ++agree;
  r.rows.push_back(std::move(eager));
  r.rows.push_back(std::move(g));
  const double eMean = summarize(eagerUs.samples).mean, gMean = summarize(graphUs.samples).mean;
  r.summary["graph_speedup_vs_eager"] = eMean / gMean;
  r.summary["tokens_compared"] = n;
  r.summary["tokens_identical_prefix"] = agree;
  if (agree != n)
    r.warnings.push_back("eager and graph decode diverge at token " + std::to_string(agree) + " of " +
                         std::to_string(n) + " (fp rounding of near-tied logits of random weights?)");
  return r;
}

}  // namespace wb
