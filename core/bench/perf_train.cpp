// Training throughput; see perf_train.h.
#include "core/bench/perf_train.h"

#include <random>

#include "core/bench/kineto_trace.h"
#include "core/bench/memory_probe.h"
#include "core/bench/mfu.h"
#include "core/bench/perf_device.h"
#include "core/bench/perf_matmul.h"
#include "core/bench/stats.h"
#include "core/errors.h"
#include "core/model/gpt2.h"
#include "core/train/trainer.h"

namespace wb {

PerfResult runTrainPerf(const TrainPerfOptions& o) {
  if (o.repeats < 2) throw InputError("--repeats", "needs at least 2 timed steps for a standard deviation");
  const auto device = parsePerfDevice(o.device);
  const Precision precision = parsePrecision(o.precision, "--precision");
  checkPrecisionSupported(precision, device, "--precision");
  const Gpt2Config cfg = o.model.config();
  if (o.seqLen > cfg.nPositions) throw InputError("--seq-len", "exceeds n_positions");
  if (!o.traceFile.empty() && (!kinetoTraceBuilt() || !device.is_cuda()))
    throw InputError("--trace", "kernel traces need a CUDA build and --device cuda");

  PerfResult r;
  r.kind = "train";
  r.env = perfEnvironment(o.device, o.command);
  r.config = {{"model", o.model.toJson()},
              {"batch_size", o.batchSize},
              {"seq_len", o.seqLen},
              {"precision", o.precision},
              {"attention", o.attention},
              {"fused_optimizer", o.fusedOptimizer},
              {"activation_checkpointing", o.activationCheckpointing},
              {"fused_lm_head_loss", o.fusedLmHeadLoss},
              {"lm_head_chunk_rows", o.lmHeadChunkRows},
              {"loss_kernel", o.lossKernel},
              {"grads_to_none", o.gradsToNone},
              {"fused_layer_norm", o.fusedLayerNorm},
              {"warmup_steps", o.warmup},
              {"timed_steps", o.repeats},
              {"timing", device.is_cuda() ? "cuda events per step" : "steady_clock per step"}};

  // The matmul peak first, on an idle card, in the dtype the step's matmuls use.
  double peak = o.peakTflops;
  if (peak <= 0.0) {
    MatmulPerfOptions mo;
    mo.device = o.device;
    mo.dtype = precision == Precision::Fp32 ? "fp32" : o.precision;
    mo.sizes = {device.is_cuda() ? 8192 : 512};
    mo.warmup = 5;
    mo.repeats = 20;
    peak = runMatmulPerf(mo).summary["peak_tflops"].get<double>();
    r.config["peak_source"] = "measured in this run: " + mo.dtype + " " + std::to_string(mo.sizes[0]) + "^3 GEMM";
  } else {
    r.config["peak_source"] = "given (--peak-tflops)";
  }

  torch::manual_seed(static_cast<int64_t>(o.seed));
  Gpt2 model(cfg);
  model->to(device);
  model->setAttentionBackend(parseAttentionBackend(o.attention, "--attention"));
  model->setFusedLayerNorm(o.fusedLayerNorm);
  // Random tokens: throughput does not depend on the text.
  std::vector<uint16_t> tokens(static_cast<size_t>(std::max<int64_t>(1 << 20, 4 * o.batchSize * (o.seqLen + 1))));
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int> dist(0, static_cast<int>(cfg.vocabSize) - 1);
  for (auto& t : tokens) t = static_cast<uint16_t>(dist(rng));

  TrainOptions to;
  to.steps = o.warmup + o.repeats;
  to.batchSize = o.batchSize;
  to.seqLen = o.seqLen;
  to.warmupSteps = 2;
  to.evalEvery = 0;
  to.timingWarmup = o.warmup;
  to.precision = precision;
  to.adamw.fused = o.fusedOptimizer;
  to.activationCheckpointing = o.activationCheckpointing;
  to.fusedLmHeadLoss = o.fusedLmHeadLoss;
  to.lmHeadChunkRows = o.lmHeadChunkRows;
  to.lossKernel = o.lossKernel;
  to.gradsToNone = o.gradsToNone;
  to.seed = o.seed;
  Trainer trainer(model, to, {tokens.data(), static_cast<int64_t>(tokens.size()), "random"}, {});
  BenchMetric stepMs{"step_ms", {}}, tps{"tokens_per_s", {}};
  double lastLoss = 0.0;
  TrainSink sink;
  sink.sample = [&](const std::string& s, int64_t, double v) {
    if (s == "train/step_time_s") stepMs.samples.push_back(v * 1e3);
    if (s == "train/tokens_per_s") tps.samples.push_back(v);
    if (s == "train/loss") lastLoss = v;
  };
  resetPeakMemory(device);
  CancelToken cancel;
  trainer.run(sink, cancel);
  const auto mem = probeMemory(device);
  if (!o.traceFile.empty()) {  // after timing: the trace does not perturb the figures
    TrainOptions traced = to;
    traced.steps = 3;
    traced.timingWarmup = 1;
    Trainer tracer(model, traced, {tokens.data(), static_cast<int64_t>(tokens.size()), "random"}, {});
    torch::cuda::synchronize();
    startKinetoTrace();
    tracer.run(TrainSink{}, cancel);
    torch::cuda::synchronize();
    stopKinetoTrace(o.traceFile);
    r.config["trace"] = o.traceFile + " (3 steps after the timed ones)";
  }

  const double flopsPerToken = gpt2TrainFlopsPerToken(cfg, model->parameterCount(), o.seqLen);
  const double meanTps = summarize(tps.samples).mean;
  const double achieved = meanTps * flopsPerToken;
  PerfRow row;
  row.label = std::string("libtorch ") + o.precision + (o.fusedOptimizer ? ", fused AdamW" : ", AdamW") +
              (o.activationCheckpointing ? ", act. ckpt" : "") +
              (o.fusedLmHeadLoss ? ", fused LM-head loss (" + std::to_string(o.lmHeadChunkRows) + " rows" +
                                     (o.lossKernel ? "" : ", LibTorch softmax") + ")"
                                  : "") +
              (o.gradsToNone ? "" : ", grads zeroed") + (o.fusedLayerNorm ? "" : ", LibTorch LayerNorm");
  row.metrics = {stepMs, tps};
  row.values["achieved_tflops"] = achieved * 1e-12;
  const Mfu measured = modelFlopsUtilisation(achieved, peak * 1e12, "the measured matmul peak");
  row.values["mfu_measured_peak_pct"] = measured.percent;
  if (measured.clamped) r.warnings.push_back(measured.warning);
  if (device.is_cuda()) {
    const Mfu sheet = modelFlopsUtilisation(achieved, o.datasheetTflops * 1e12, "the datasheet peak");
    row.values["mfu_datasheet_pct"] = sheet.percent;
    if (sheet.clamped) r.warnings.push_back(sheet.warning);
    row.values["mem_allocated_mb"] = mem.cudaAllocatedMb;
    row.values["mem_reserved_mb"] = mem.cudaReservedMb;
    row.values["mem_peak_mb"] = mem.cudaPeakMb;
    row.values["device_used_mb"] = nvmlUsedText(mem.nvml);
  } else {
    row.values["rss_mb"] = mem.rssMb;
  }
  row.values["final_loss"] = lastLoss;
  r.rows.push_back(std::move(row));
  r.summary["peak_tflops_for_mfu"] = peak;
  r.summary["datasheet_tflops"] = o.datasheetTflops;
  r.summary["flops_per_token"] = flopsPerToken;
  r.summary["parameters"] = model->parameterCount();
  r.summary["tokens_per_step"] = o.batchSize * o.seqLen;
  return r;
}

}  // namespace wb
