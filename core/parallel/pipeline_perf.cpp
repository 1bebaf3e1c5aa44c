// Multi-GPU training measurement; see pipeline_perf.h.
#include "core/parallel/pipeline_perf.h"

#include <chrono>
#include <cmath>
#include <random>

#include "core/bench/memory_probe.h"
#include "core/bench/perf_device.h"
#include "core/bench/timer.h"
#include "core/bench/stats.h"
#include "core/errors.h"
#include "core/model/attention.h"
#include "core/parallel/nccl_transport.h"
#include "core/parallel/pipeline_engine.h"
#include "core/train/lr_schedule.h"

#ifdef WB_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace wb {
namespace {

using Clock = std::chrono::steady_clock;

// Batch `step` of the synthetic data: each row repeats a random pattern of 8..64
// tokens, so the loss falls as the model learns to copy, the same for every row set up.
std::pair<torch::Tensor, torch::Tensor> syntheticBatch(int64_t rows, int64_t t, int64_t vocab, uint64_t seed,
                                                       int64_t step) {
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(step));
  auto ids = torch::empty({rows, t + 1}, torch::kLong);
  auto acc = ids.accessor<int64_t, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t len = 8 + static_cast<int64_t>(rng() % 57);
    std::vector<int64_t> pattern(static_cast<size_t>(len));
    for (auto& p : pattern) p = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab));
    for (int64_t i = 0; i <= t; ++i) acc[r][i] = pattern[static_cast<size_t>(i % len)];
  }
  return {ids.narrow(1, 0, t).contiguous(), ids.narrow(1, 1, t).contiguous()};
}

void synchronizeAll(const std::vector<torch::Device>& devices) {
#ifdef WB_WITH_CUDA
  for (const auto& d : devices)
    if (d.is_cuda()) {
      c10::cuda::CUDAGuard guard(d);
      c10::cuda::device_synchronize();
    }
#else
  (void)devices;
#endif
}

// Layers per stage balanced by measured time: forward + backward of one block's
// attention half, of its MLP half and of ln_f + LM head + loss on one micro-batch (bf16
// autocast as in training), timed with CUDA events after a warm-up; cuts may fall
// between a block's halves; the embeddings count as free (a lookup).
std::vector<double> measuredBalance(const Gpt2Config& cfg, AttentionBackend backend, torch::Device device,
                                     int64_t rows, int64_t t, Precision precision, int stages, nlohmann::json& info) {
  torch::manual_seed(1);
  Gpt2Block block(cfg, 0);
  block->to(device);
  auto lnf = torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.nEmbd}).eps(cfg.layerNormEpsilon));
  lnf->to(device);
  auto head = (torch::randn({cfg.vocabSize, cfg.nEmbd}) * 0.02).to(device).requires_grad_(true);
  auto x = torch::randn({rows, t, cfg.nEmbd}, torch::TensorOptions().device(device)).requires_grad_(true);
  auto targets = torch::randint(0, cfg.vocabSize, {rows * t}, torch::TensorOptions().dtype(torch::kLong).device(device));
  std::optional<compat::AutocastGuard> autocast;
  if (precision != Precision::Fp32) autocast.emplace(c10::DeviceType::CUDA, autocastDtype(precision));
  auto timeIt = [&](const std::function<void()>& fn) {
    const auto s = timeRepeated(device, 2, 5, fn);
    return summarize(s).mean;
  };
  const double attentionS = timeIt([&] {
    auto y = block->forwardAttention(x, nullptr, backend);
    y.backward(torch::ones_like(y));
  });
  const double mlpS = timeIt([&] {
    auto y = block->forwardMlp(x);
    y.backward(torch::ones_like(y));
  });
  const double headS = timeIt([&] {
    auto logits = torch::matmul(lnf->forward(x), head.t());
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, cfg.vocabSize}).to(torch::kFloat32), targets);
    loss.backward();
  });
  info = {{"attention_half_ms", attentionS * 1e3},
          {"mlp_half_ms", mlpS * 1e3},
          {"head_ms", headS * 1e3},
          {"micro_batch_rows", rows}};
  const auto us = [](double sec) { return static_cast<int64_t>(std::llround(sec * 1e6)); };
  std::vector<int64_t> halves;
  for (int64_t l = 0; l < cfg.nLayer; ++l) {
    halves.push_back(us(attentionS));
    halves.push_back(us(mlpS));
  }
  std::vector<double> out;
  for (const auto& p : balancedPartition(halves, 0, us(headS), stages, true)) out.push_back(p.layers());
  return out;
}

struct RowSpec {
  std::string label;
  int stages = 1, replicas = 1;
  int64_t micro = 1;
  ScheduleKind schedule = ScheduleKind::OneFOneB;
};

}  // namespace

PerfResult runPipelinePerf(const PipelinePerfOptions& o) {
  if (o.steps - o.warmup < 2) throw InputError("--steps", "needs at least 2 timed steps after --warmup");
  const torch::Device home = parsePerfDevice(o.device);
  const Precision precision = parsePrecision(o.precision, "--precision");
  if (precision != Precision::Fp32) checkPrecisionSupported(precision, home, "--precision");
  Gpt2Config cfg = o.model.config();
  if (o.seqLen > cfg.nPositions) throw InputError("--seq-len", "exceeds n_positions");
  const bool cuda = home.is_cuda();
  int gpus = 0;
#ifdef WB_WITH_CUDA
  if (cuda) gpus = static_cast<int>(c10::cuda::device_count());
#endif
  auto deviceOf = [&](int rank) {
    return cuda ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(rank)) : torch::Device(torch::kCPU);
  };

  PerfResult res;
  res.kind = "pipeline";
  res.env = perfEnvironment(o.device, o.command);
  std::vector<double> balance;
  nlohmann::json balanceInfo;
  if (o.balance == "measure") {
    const int64_t rows = std::max<int64_t>(1, o.batchSize / std::max<int64_t>(1, o.microBatches.empty() ? 4 : o.microBatches.front()));
    balance = measuredBalance(cfg, parseAttentionBackend(o.attention, "--attention"), home, rows, o.seqLen, precision,
                              o.stages, balanceInfo);
  } else if (o.balance == "compute") {
    const auto k = computeCosts(cfg, o.seqLen);
    for (const auto& p : balancedPartition(k.halves, k.embeddings, k.head, o.stages, true))
      balance.push_back(p.layers());
  } else if (o.balance != "params") {
    size_t pos = 0;
    while (pos < o.balance.size()) {
      const size_t comma = o.balance.find(',', pos);
      const std::string item = o.balance.substr(pos, comma - pos);
      try {
        balance.push_back(std::stod(item));
      } catch (const std::exception&) {
        throw InputError("--balance", "expected measure, compute, params or numbers of layers, got '" + item + "'");
      }
      pos = comma == std::string::npos ? o.balance.size() : comma + 1;
    }
  }
  res.config = {{"model", o.model.toJson()},
                {"batch_size", o.batchSize},
                {"seq_len", o.seqLen},
                {"tokens_per_step", o.batchSize * o.seqLen},
                {"precision", o.precision},
                {"attention", o.attention},
                {"stages", o.stages},
                {"balance", o.balance},
                {"balance_layers", balance},
                {"balance_measurement", balanceInfo},
                {"data_parallel", o.dataParallel},
                {"warmup_steps", o.warmup},
                {"timed_steps", o.steps - o.warmup},
                {"lr", o.lr},
                {"fused_optimizer", o.fusedOptimizer && compat::kHasFusedAdamW},
                {"data", "synthetic: each row repeats a random 8-64 token pattern; the same batches in every row"},
                {"timing", "host clock per step after synchronising every GPU; bubble from CUDA-event spans"},
                {"backend", cuda ? (kHasNccl ? "nccl" : "none") : "in-process"}};
#ifdef WB_HAVE_NCCL
  res.config["nccl"] = ncclVersionText();
#endif

  std::vector<RowSpec> rows;
  rows.push_back({"1 GPU, " + std::to_string(o.baselineMicroBatches) + " accumulation chunks", 1, 1,
                  o.baselineMicroBatches, ScheduleKind::OneFOneB});
  for (const auto& name : o.schedules)
    for (int64_t m : o.microBatches) {
      const ScheduleKind k = parseScheduleKind(name, "--schedules");
      rows.push_back({std::to_string(o.stages) + "-stage " + toString(k) + ", M=" + std::to_string(m), o.stages, 1, m, k});
    }
  if (o.includeDataParallel && o.dataParallel > 1)
    rows.push_back({"data parallel x" + std::to_string(o.dataParallel) + ", " +
                        std::to_string(o.baselineMicroBatches / o.dataParallel > 0
                                           ? o.baselineMicroBatches / o.dataParallel
                                           : 1) +
                        " chunks per replica",
                    1, o.dataParallel, std::max<int64_t>(1, o.baselineMicroBatches / o.dataParallel),
                    ScheduleKind::OneFOneB});

  int64_t parameters = 0;
  std::vector<double> baseLosses;
  double baseTps = 0.0;
  double bestPipe = 0.0, dpSpeedup = 0.0, worstPipeLossDiff = 0.0;
  const int64_t tokensPerStep = o.batchSize * o.seqLen;
  for (const RowSpec& spec : rows) {
    const int world = spec.stages * spec.replicas;
    if (cuda && world > gpus) {
      res.warnings.push_back("skipped \"" + spec.label + "\": needs " + std::to_string(world) + " GPUs, " +
                             std::to_string(gpus) + " visible");
      continue;
    }
    if (cuda && world > 1 && !kHasNccl) {
      res.warnings.push_back("skipped \"" + spec.label + "\": this build has no NCCL");
      continue;
    }
    torch::manual_seed(static_cast<int64_t>(o.seed));
    Gpt2 model(cfg);
    parameters = model->parameterCount();
    model->setAttentionBackend(parseAttentionBackend(o.attention, "--attention"));
    model->train();
    PipelineOptions po;
    po.stages = spec.stages;
    po.microBatches = spec.micro;
    po.schedule = spec.schedule;
    po.dataParallel = spec.replicas;
    if (spec.stages > 1) po.balance = balance;
    for (int r = 0; r < world; ++r) po.devices.push_back(deviceOf(r));
    po.precision = precision;
    po.adamw.fused = o.fusedOptimizer && compat::kHasFusedAdamW;
#ifdef WB_HAVE_NCCL
    if (cuda && world > 1)
      po.comm = ncclCommFactory(makeInMemoryRendezvous(std::chrono::seconds(120)), std::chrono::seconds(120));
#endif
    for (const auto& d : po.devices)
      if (d.is_cuda()) resetPeakMemory(d);
    PipelineEngine engine(model, po);
    CancelToken cancel;
    BenchMetric stepMs{"step_ms", {}}, tps{"tokens_per_s", {}}, bubble{"bubble", {}}, reduceMs{"allreduce_ms", {}};
    std::vector<double> losses;
    std::vector<StageTiming> stageSum(static_cast<size_t>(spec.stages));
    for (int64_t step = 0; step < o.steps; ++step) {
      auto [x, y] = syntheticBatch(o.batchSize, o.seqLen, cfg.vocabSize, o.seed, step);
      const double lr = warmupCosineLr(step, o.steps, 2, o.lr, o.lr * 0.1);
      synchronizeAll(po.devices);
      const auto t0 = Clock::now();
      engine.zeroGrad();
      const PassResult r = engine.forwardBackward(x, y, static_cast<double>(spec.micro), cancel);
      engine.syncTiedGradients(cancel);
      engine.clipGradNorm(1.0, cancel);
      engine.step(lr, cancel);
      synchronizeAll(po.devices);
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      losses.push_back(r.loss);
      if (step < o.warmup) continue;
      stepMs.samples.push_back(dt * 1e3);
      tps.samples.push_back(static_cast<double>(tokensPerStep) / dt);
      bubble.samples.push_back(r.bubble);
      if (spec.replicas > 1) reduceMs.samples.push_back(r.reduceS * 1e3);
      for (size_t s = 0; s < r.timing.size() && s < stageSum.size(); ++s) {
        stageSum[s].forwardS += r.timing[s].forwardS;
        stageSum[s].backwardS += r.timing[s].backwardS;
        stageSum[s].idleS += r.timing[s].idleS;
        stageSum[s].commS += r.timing[s].commS;
        stageSum[s].windowS += r.timing[s].windowS;
      }
    }
    PerfRow row;
    row.label = spec.label;
    row.metrics = {stepMs, tps};
    if (spec.stages > 1) row.metrics.push_back(bubble);
    if (spec.replicas > 1) row.metrics.push_back(reduceMs);
    const double meanTps = summarize(tps.samples).mean;
    row.values["stages"] = spec.stages;
    row.values["replicas"] = spec.replicas;
    row.values["micro_batches"] = spec.micro;
    row.values["micro_batch_rows"] = o.batchSize / spec.replicas / spec.micro;
    if (spec.stages > 1) {
      row.values["schedule"] = toString(spec.schedule);
      row.values["bubble_theory"] = theoreticalBubble(spec.stages, spec.micro);
      row.values["bubble_measured"] = summarize(bubble.samples).mean;
      row.values["bubble_minus_theory_pp"] =
          100.0 * (summarize(bubble.samples).mean - theoreticalBubble(spec.stages, spec.micro));
      row.values["partition"] = describe(engine.plan());
      const double timed = static_cast<double>(o.steps - o.warmup);
      nlohmann::json perStage = nlohmann::json::array();
      for (const auto& t : stageSum)
        perStage.push_back({{"forward_ms", 1e3 * t.forwardS / timed},
                            {"backward_ms", 1e3 * t.backwardS / timed},
                            {"comm_ms", 1e3 * t.commS / timed},
                            {"idle_ms", 1e3 * t.idleS / timed},
                            {"window_ms", 1e3 * t.windowS / timed}});
      row.values["per_stage"] = perStage;
    }
    nlohmann::json mem = nlohmann::json::array();
    for (int r = 0; r < world; ++r) {
      const auto snap = probeMemory(deviceOf(r));
      if (snap.hasCuda)
        mem.push_back({{"device", deviceOf(r).str()},
                       {"peak_allocated_mb", snap.cudaPeakMb},
                       {"allocated_mb", snap.cudaAllocatedMb},
                       {"reserved_mb", snap.cudaReservedMb}});
      else
        mem.push_back({{"device", "cpu"}, {"rss_mb", snap.rssMb}});
      if (!cuda) break;
    }
    row.values["memory"] = mem;
    row.values["losses"] = losses;
    if (baseLosses.empty()) {
      baseLosses = losses;
      baseTps = meanTps;
    } else {
      double worst = 0.0;
      for (size_t i = 0; i < losses.size() && i < baseLosses.size(); ++i)
        worst = std::max(worst, std::abs(losses[i] - baseLosses[i]) / std::abs(baseLosses[i]));
      row.values["loss_max_rel_diff_vs_1gpu"] = worst;
      row.values["speedup_vs_1gpu"] = meanTps / baseTps;
      if (spec.stages > 1) {
        bestPipe = std::max(bestPipe, meanTps / baseTps);
        worstPipeLossDiff = std::max(worstPipeLossDiff, worst);
      } else {
        dpSpeedup = meanTps / baseTps;
      }
    }
    res.rows.push_back(std::move(row));
  }
  res.summary["best_pipeline_speedup"] = bestPipe;
  res.summary["data_parallel_speedup"] = dpSpeedup;
  res.summary["pipeline_loss_max_rel_diff"] = worstPipeLossDiff;
  res.summary["parameters"] = parameters;
  return res;
}

}  // namespace wb
