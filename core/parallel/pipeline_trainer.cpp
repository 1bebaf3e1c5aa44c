// The pipeline training loop; see pipeline_trainer.h.
#include "core/parallel/pipeline_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/bench/memory_probe.h"
#include "core/errors.h"
#include "core/run/profile.h"
#include "core/train/checkpoint.h"
#include "core/train/lr_schedule.h"

namespace wb {

PipelineTrainer::PipelineTrainer(Gpt2 model, TrainOptions options, PipelineOptions pipeline,
                                 TokenSpan train, TokenSpan val, TrainHooks hooks)
    : model_(model),
      o_(options),
      hooks_(std::move(hooks)),
      train_(std::move(train)),
      val_(std::move(val)),
      sampler_(train_.data, train_.count, o_.seqLen, o_.batchSize, o_.seed, train_.source),
      engine_(model, [&] {
        pipeline.adamw = options.adamw;
        return std::move(pipeline);
      }()) {
  if (hooks_.loss || hooks_.forward || !hooks_.parameters.empty())
    throw RunError("pipeline", "pipeline training takes only the afterStep hook",
                   "custom losses, forwards and parameter lists run with Trainer on one device");
  if (o_.seqLen > model_->config().nPositions)
    throw InputError("/data/seq_len", "seq_len " + std::to_string(o_.seqLen) +
                                          " exceeds the model's n_positions " +
                                          std::to_string(model_->config().nPositions));
  const int64_t parts = engine_.options().microBatches * engine_.replicas();
  if (o_.batchSize % parts != 0)
    throw ProfileError({}, "/parallel/micro_batches",
                       "batch_size " + std::to_string(o_.batchSize) + " does not split into " +
                           std::to_string(engine_.replicas()) + " replicas x " +
                           std::to_string(engine_.options().microBatches) + " equal micro-batches");
}

bool PipelineTrainer::canEvaluate() const {
  // Under torchrun a process holds its own stage only; the whole model is current
  // only without pipeline stages (each replica is whole) or in one process.
  return engine_.layout().localRanks.size() == static_cast<size_t>(engine_.layout().worldSize()) ||
         engine_.stageCount() == 1;
}

EvalResult PipelineTrainer::runEval() {
  // The stages work on the model's own modules, so the whole model is current. With
  // stages on several devices it is gathered on the first stage's device for the
  // evaluation and put back afterwards (optimizer state never moves).
  const torch::Device home = engine_.stage(0).device();
  bool spread = false;
  for (const auto& p : model_->parameters()) spread = spread || p.device() != home;
  if (spread) model_->to(home);
  EvalOptions eo;
  eo.seqLen = o_.seqLen;
  eo.batchSize = o_.evalBatchSize;
  eo.maxWindows = o_.evalWindows;
  EvalResult r = evaluate(model_, val_.data, val_.count, eo);
  if (spread)
    for (int s = 0; s < engine_.stageCount(); ++s)
      if (engine_.hasStage(s)) engine_.stage(s).placeOnDevice();
  return r;
}

void PipelineTrainer::resumeFrom(const std::filesystem::path& dir) {
  const LoadedCheckpoint c = readTrainingCheckpoint(dir, model_);
  engine_.reloadFromModel();
  engine_.loadOptimizerState(c.optimizerState, c.optimizerSteps);
  step_ = c.state.step;
  sampler_.setCursor(c.state.dataCursor);
}

void PipelineTrainer::run(const TrainSink& sink, const CancelToken& cancel,
                          const std::filesystem::path& checkpointRoot) {
  using Clock = std::chrono::steady_clock;
  const int64_t tokensPerStep = o_.batchSize * o_.seqLen * o_.gradAccum;
  const int64_t m = engine_.options().microBatches;
  const double divisor = static_cast<double>(m * o_.gradAccum);
  auto emit = [&](const std::string& s, int64_t step, double v) {
    if (sink.sample) sink.sample(s, step, v);
  };
  const bool evaluate = val_.count > 0 && canEvaluate();
  if (val_.count > 0 && !evaluate && sink.log)
    sink.log("evaluation skipped: this process holds one pipeline stage, not the whole model");
  if (evaluate && step_ == 0) {
    lastEval_ = runEval();
    emit("eval/loss", 0, lastEval_->loss);
    emit("eval/perplexity", 0, lastEval_->perplexity);
  }
  model_->train();
  for (; step_ < o_.steps; ++step_) {
    cancel.throwIfCancelled();
    const double lr = warmupCosineLr(step_, o_.steps, o_.warmupSteps, o_.lr, o_.minLr);
    const auto t0 = Clock::now();
    engine_.zeroGrad();
    double loss = 0.0;
    std::vector<StageTiming> timing;
    double bubble = 0.0, bubbleTheory = 0.0, reduceS = 0.0;
    std::vector<PassResult::RankMemory> rankMemory;
    for (int64_t pass = 0; pass < o_.gradAccum; ++pass) {
      auto [x, y] = sampler_.next();
      const PassResult r = engine_.forwardBackward(x, y, divisor, cancel, pass + 1 == o_.gradAccum);
      reduceS += r.reduceS;
      loss += r.loss;
      bubble += r.bubble / static_cast<double>(o_.gradAccum);
      bubbleTheory = r.theoreticalBubble;
      if (!r.rankMemory.empty()) rankMemory = r.rankMemory;
      if (timing.empty()) timing.resize(r.timing.size());
      for (size_t s = 0; s < r.timing.size(); ++s) {
        timing[s].forwardS += r.timing[s].forwardS;
        timing[s].backwardS += r.timing[s].backwardS;
        timing[s].commS += r.timing[s].commS;
        timing[s].idleS += r.timing[s].idleS;
        timing[s].windowS += r.timing[s].windowS;
      }
    }
    if (!std::isfinite(loss))
      throw RunError("train",
                     "loss is " + std::to_string(loss) + " at step " + std::to_string(step_ + 1),
                     "lower lr, raise warmup_steps or enable grad_clip");
    const auto tSync = Clock::now();
    engine_.syncTiedGradients(cancel);
    const double maxNorm = o_.gradClip > 0 ? o_.gradClip : std::numeric_limits<double>::infinity();
    const double gradNorm = engine_.clipGradNorm(maxNorm, cancel);
    engine_.step(lr, cancel);
    if (hooks_.afterStep) hooks_.afterStep(step_ + 1);
    const double optimizerS = std::chrono::duration<double>(Clock::now() - tSync).count();
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    const int64_t s = step_ + 1;
    losses_.push_back(loss);
    emit("train/loss", s, loss);
    emit("train/lr", s, lr);
    emit("train/grad_norm", s, gradNorm);
    if (step_ >= o_.timingWarmup) {
      emit("train/step_time_s", s, dt);
      emit("train/tokens_per_s", s, static_cast<double>(tokensPerStep) / dt);
      emit("train/samples_per_s", s, static_cast<double>(o_.batchSize * o_.gradAccum) / dt);
      for (size_t k = 0; k < timing.size(); ++k) {
        const std::string p = "pipeline/stage" + std::to_string(k) + "/";
        emit(p + "forward_ms", s, 1e3 * timing[k].forwardS);
        emit(p + "backward_ms", s, 1e3 * timing[k].backwardS);
        emit(p + "comm_ms", s, 1e3 * timing[k].commS);
        emit(p + "idle_ms", s, 1e3 * timing[k].idleS);
      }
      emit("pipeline/bubble", s, bubble);
      emit("pipeline/bubble_theory", s, bubbleTheory);
      emit("pipeline/optimizer_ms", s, 1e3 * optimizerS);
      if (engine_.replicas() > 1) emit("pipeline/allreduce_ms", s, 1e3 * reduceS);
    }
    // Memory per device this process drives (rank order), allocator figures on CUDA.
    std::vector<torch::Device> seen;
    for (int rank : engine_.layout().localRanks) {
      const torch::Device dev = engine_.layout().devices[static_cast<size_t>(rank)];
      if (std::find(seen.begin(), seen.end(), dev) != seen.end()) continue;
      seen.push_back(dev);
      const auto mem = probeMemory(dev);
      if (seen.size() == 1) emit("mem/rss_mb", s, mem.rssMb);
      if (!mem.hasCuda) continue;
      const std::string p = "mem/gpu" + std::to_string(dev.index()) + "/";
      emit(p + "allocated_mb", s, mem.cudaAllocatedMb);
      emit(p + "peak_mb", s, mem.cudaPeakMb);
    }
    // Under torchrun this process drives one GPU; the other ranks' come gathered.
    for (size_t w = 0; w < rankMemory.size(); ++w) {
      const std::string p = "mem/rank" + std::to_string(w) + "/";
      emit(p + "allocated_mb", s, rankMemory[w].allocatedMb);
      emit(p + "reserved_mb", s, rankMemory[w].reservedMb);
      emit(p + "peak_mb", s, rankMemory[w].peakMb);
    }
    if (sink.progress) sink.progress(s, o_.steps, static_cast<double>(tokensPerStep) / dt);
    if (!checkpointRoot.empty() && checkpointDue(o_, s)) {
      engine_.gatherModel(cancel);
      auto state = engine_.gatherOptimizerState(cancel);
      if (engine_.drivesRankZero()) {
        const auto dir = saveTrainingCheckpoint(checkpointRoot, model_, std::move(state), engine_.optimizerSteps(),
                                                {s, sampler_.cursor()}, o_.keepCheckpoints);
        if (sink.log) sink.log("checkpoint " + dir.string());
      }
    }
    if (evaluate && evaluationDue(o_, s)) {
      lastEval_ = runEval();
      model_->train();
      emit("eval/loss", s, lastEval_->loss);
      emit("eval/perplexity", s, lastEval_->perplexity);
      if (sink.log)
        sink.log("step " + std::to_string(s) + ": train loss " + std::to_string(loss) +
                 ", val loss " + std::to_string(lastEval_->loss) + ", bubble " +
                 std::to_string(bubble) + " (theory " + std::to_string(bubbleTheory) + ")");
    }
  }
  model_->eval();
}

}  // namespace wb
