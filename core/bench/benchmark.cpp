// Benchmark sweeps; see benchmark.h.
#include "core/bench/benchmark.h"

#include <algorithm>
#include <chrono>

#include <ATen/CPUGeneratorImpl.h>

#include "core/bench/memory_probe.h"
#include "core/bench/timer.h"
#include "core/errors.h"
#include "core/model/generate.h"

namespace wb {
namespace {

torch::Tensor randomIds(int64_t batch, int64_t seqLen, int64_t vocab, uint64_t seed, const torch::Device& device) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(vocab, {batch, seqLen}, gen, torch::TensorOptions().dtype(torch::kLong)).to(device);
}

torch::Device modelDevice(Gpt2& model) { return model->parameters().front().device(); }

struct RunSample {
  double prefill = 0.0, decodePerToken = 0.0;
};

// One prefill of [B, T] into a fresh cache, then `decode` single-token steps.
RunSample runOnce(Gpt2& model, const torch::Tensor& ids, int64_t decode) {
  const auto device = ids.device();
  const auto dtype = model->parameters().front().scalar_type();
  KvCache cache = model->makeCache(ids.size(0), ids.size(1) + decode, torch::TensorOptions().dtype(dtype).device(device));
  RunSample s;
  // CUDA events on the GPU (steady_clock on the CPU): the device's own time for the work.
  DeviceTimer timer(device);
  timer.start();
  auto logits = model->forward(ids, &cache);
  auto next = logits.select(1, logits.size(1) - 1).argmax(-1, true);
  timer.stop();
  s.prefill = timer.seconds();
  if (decode > 0) {
    timer.start();
    for (int64_t i = 0; i < decode; ++i) {
      logits = model->forward(next, &cache);
      next = logits.select(1, 0).argmax(-1, true);
    }
    timer.stop();
    s.decodePerToken = timer.seconds() / static_cast<double>(decode);
  }
  return s;
}

}  // namespace

std::vector<BenchPoint> runSweep(Gpt2& model, const SweepOptions& o, const CancelToken* cancel,
                                 const std::function<void(int64_t, int64_t)>& progress) {
  if (o.repeats < 1) throw InputError("benchmark", "repeats must be >= 1");
  const auto device = modelDevice(model);
  const auto available = availableBackends(device);
  for (auto b : o.backends)
    if (std::find(available.begin(), available.end(), b) == available.end())
      throw InputError("benchmark", std::string("attention backend ") + toString(b) +
                                        " is not available on " + device.str(),
                       "drop it from the sweep");
  torch::NoGradGuard noGrad;
  const bool wasTraining = model->is_training();
  const auto savedBackend = model->attentionBackend();
  model->eval();
  std::vector<BenchPoint> points;
  const int64_t total = static_cast<int64_t>(o.batchSizes.size() * o.seqLens.size() * o.backends.size());
  for (int64_t batch : o.batchSizes) {
    for (int64_t seqLen : o.seqLens) {
      if (seqLen + o.decodeTokens > model->config().nPositions)
        throw InputError("benchmark", "seq_len " + std::to_string(seqLen) + " + decode_tokens " +
                                          std::to_string(o.decodeTokens) + " exceeds n_positions " +
                                          std::to_string(model->config().nPositions));
      const auto ids = randomIds(batch, seqLen, model->config().vocabSize, o.seed, device);
      for (auto backend : o.backends) {
        if (cancel) cancel->throwIfCancelled();
        model->setAttentionBackend(backend);
        for (int64_t w = 0; w < o.warmup; ++w) runOnce(model, ids, o.decodeTokens);
        BenchPoint p{batch, seqLen, toString(backend), o.weights, {}};
        BenchMetric prefillMs{"prefill_ms"}, decodeMs{"decode_ms_per_token"}, prefillTps{"prefill_tokens_per_s"},
            decodeTps{"decode_tokens_per_s"}, mem{"memory_mb"};
        for (int64_t r = 0; r < o.repeats; ++r) {
          if (cancel) cancel->throwIfCancelled();
          resetPeakMemory(device);
          const RunSample s = runOnce(model, ids, o.decodeTokens);
          const auto m = probeMemory(device);
          prefillMs.samples.push_back(1e3 * s.prefill);
          prefillTps.samples.push_back(static_cast<double>(batch * seqLen) / s.prefill);
          if (o.decodeTokens > 0) {
            decodeMs.samples.push_back(1e3 * s.decodePerToken);
            decodeTps.samples.push_back(static_cast<double>(batch) / s.decodePerToken);
          }
          mem.samples.push_back(m.hasCuda ? m.cudaPeakMb : m.rssMb);
        }
        p.metrics.push_back(prefillMs);
        if (o.decodeTokens > 0) p.metrics.push_back(decodeMs);
        p.metrics.push_back(prefillTps);
        if (o.decodeTokens > 0) p.metrics.push_back(decodeTps);
        p.metrics.push_back(mem);
        points.push_back(std::move(p));
        if (progress) progress(static_cast<int64_t>(points.size()), total);
      }
    }
  }
  model->setAttentionBackend(savedBackend);
  if (wasTraining) model->train();
  return points;
}

BenchMeta benchMeta(Gpt2& model, const SweepOptions& o, const std::string& modelName) {
  BenchMeta m;
  const auto device = modelDevice(model);
  m.commit = buildCommit();
  m.device = device.is_cuda() ? "cuda:" + std::to_string(device.index() < 0 ? 0 : device.index())
                              : "cpu (" + std::to_string(torch::get_num_threads()) + " threads)";
  m.torchVersion = TORCH_VERSION;
  m.timestamp = utcTimestamp();
  m.model = modelName;
  m.dtype = c10::toString(model->parameters().front().scalar_type());
  m.memoryKind = device.is_cuda() ? "CUDA peak allocated MB per run" : "process RSS MB after each run";
  m.warmup = o.warmup;
  m.repeats = o.repeats;
  m.decodeTokens = o.decodeTokens;
  return m;
}

std::vector<double> timeForward(Gpt2& model, int64_t batch, int64_t seqLen, int64_t warmup, int64_t repeats,
                                uint64_t seed) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = model->is_training();
  model->eval();
  const auto device = modelDevice(model);
  const auto ids = randomIds(batch, seqLen, model->config().vocabSize, seed, device);
  const auto out = timeRepeated(device, warmup, repeats, [&] { (void)model->forward(ids); });
  if (wasTraining) model->train();
  return out;
}

}  // namespace wb
