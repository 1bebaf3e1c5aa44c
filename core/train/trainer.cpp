// The training loop; see trainer.h.
#include "core/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#include "core/bench/memory_probe.h"
#include "core/bench/timer.h"
#include "core/nvtx.h"
#include "core/errors.h"
#include "core/model/generate.h"
#include "core/train/checkpoint.h"
#include "core/train/fused_lm_loss.h"
#include "core/train/lr_schedule.h"

namespace wb {

std::vector<std::pair<std::string, torch::Tensor>> trainableParameters(torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : model.named_parameters())
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  return out;
}

Trainer::Trainer(Gpt2 model, TrainOptions options, TokenSpan train, TokenSpan val, TrainHooks hooks)
    : model_(std::move(model)),
      o_(options),
      train_(std::move(train)),
      val_(std::move(val)),
      hooks_(std::move(hooks)),
      sampler_(train_.data, train_.count, o_.seqLen, o_.batchSize, o_.seed, train_.source),
      optimizer_(hooks_.parameters.empty() ? trainableParameters(*model_) : hooks_.parameters,
                 o_.adamw),
      device_(model_->parameters().front().device()) {
  if (o_.seqLen > model_->config().nPositions)
    throw InputError("/data/seq_len", "seq_len " + std::to_string(o_.seqLen) +
                                          " exceeds the model's n_positions " +
                                          std::to_string(model_->config().nPositions));
  if (optimizer_.params().empty())
    throw InputError("train", "the model has no trainable parameters");
  checkPrecisionSupported(o_.precision, device_, "precision");
  if (o_.precision == Precision::Fp16) scaler_.emplace(o_.gradScaler);
  model_->setActivationCheckpointing(o_.activationCheckpointing);
  if (o_.fusedLmHeadLoss && (hooks_.loss || hooks_.forward))
    throw InputError("fused_lm_head_loss",
                     "the fused LM-head loss replaces the next-token objective only; this training "
                     "brings its own loss or forward (distillation, LoRA probes)",
                     "turn fused_lm_head_loss off for it");
  if (o_.lmHeadChunkRows < 1) throw InputError("lm_head_chunk_rows", "must be >= 1");
}

bool evaluationDue(const TrainOptions& o, int64_t step) {
  return (o.evalEvery > 0 && step % o.evalEvery == 0) || step == o.steps;
}

bool checkpointDue(const TrainOptions& o, int64_t step) {
  const bool listed = std::find(o.checkpointSteps.begin(), o.checkpointSteps.end(), step) != o.checkpointSteps.end();
  return (o.checkpointEvery > 0 && (step % o.checkpointEvery == 0 || step == o.steps)) || listed;
}

void Trainer::resumeFrom(const std::filesystem::path& dir) {
  const CheckpointState s = loadTrainingCheckpoint(dir, model_, optimizer_);
  step_ = s.step;
  sampler_.setCursor(s.dataCursor);
}

EvalResult Trainer::runEval() {
  EvalOptions eo;
  eo.seqLen = o_.seqLen;
  eo.batchSize = o_.evalBatchSize;
  eo.maxWindows = o_.evalWindows;
  return evaluate(model_, val_.data, val_.count, eo);
}

void Trainer::run(const TrainSink& sink, const CancelToken& cancel,
                  const std::filesystem::path& checkpointRoot) {
  const int64_t tokensPerStep = o_.batchSize * o_.seqLen * o_.gradAccum;
  const int64_t vocab = model_->config().vocabSize;
  auto emit = [&](const std::string& s, int64_t step, double v) {
    if (sink.sample) sink.sample(s, step, v);
  };
  std::vector<torch::Tensor> params;
  for (auto& [name, p] : optimizer_.params()) params.push_back(p);
  if (val_.count > 0 && step_ == 0) {
    lastEval_ = runEval();
    emit("eval/loss", 0, lastEval_->loss);
    emit("eval/perplexity", 0, lastEval_->perplexity);
  }
  model_->train();
  DeviceTimer timer(device_);
  const bool amp = o_.precision != Precision::Fp32;
  for (; step_ < o_.steps; ++step_) {
    cancel.throwIfCancelled();
    const double lr = warmupCosineLr(step_, o_.steps, o_.warmupSteps, o_.lr, o_.minLr);
    timer.start();
    optimizer_.zeroGrad(o_.gradsToNone);
    // Summed on the device and read once per step: no host sync between micro-batches.
    auto lossSum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
    std::vector<std::pair<std::string, double>> parts;
    for (int64_t micro = 0; micro < o_.gradAccum; ++micro) {
      cancel.throwIfCancelled();
      auto [xCpu, yCpu] = sampler_.next();
      const auto x = xCpu.to(device_), y = yCpu.to(device_);
      torch::Tensor l;
      {
        NvtxRange range(nvtx::kForward);
        std::optional<compat::AutocastGuard> autocast;
        if (amp) autocast.emplace(device_.type(), autocastDtype(o_.precision));
        if (o_.fusedLmHeadLoss) {
          // Hidden states straight into the chunked head + loss: no [B*T, vocab] logits.
          const auto& head =
              model_->config().tieWordEmbeddings ? model_->transformer->wte->weight : model_->lmHeadWeight;
          FusedLmLossOptions fo;
          fo.chunkRows = o_.lmHeadChunkRows;
          fo.xent = o_.lossKernel ? XentImpl::Auto : XentImpl::Reference;
          l = fusedLmHeadLoss(model_->hidden(x), head, y, fo) / static_cast<double>(o_.gradAccum);
        } else {
          const auto logits = hooks_.forward ? hooks_.forward(x) : model_->forward(x);
          if (hooks_.loss) {
            const LossParts lp = hooks_.loss(logits, x, y);
            l = lp.loss / static_cast<double>(o_.gradAccum);
            parts.resize(lp.parts.size());
            for (size_t i = 0; i < lp.parts.size(); ++i) {
              parts[i].first = lp.parts[i].first;
              parts[i].second += lp.parts[i].second.item<double>() / static_cast<double>(o_.gradAccum);
            }
          } else {
            l = torch::nn::functional::cross_entropy(logits.reshape({-1, vocab}).to(torch::kFloat32),
                                                     y.reshape({-1})) /
                static_cast<double>(o_.gradAccum);
          }
        }
      }
      lossSum += l.detach().to(torch::kFloat32);
      NvtxRange range(nvtx::kBackward);
      (scaler_ ? scaler_->scale(l) : l).backward();
    }
    std::vector<torch::Tensor> grads;
    grads.reserve(params.size());
    for (auto& p : params)
      if (p.grad().defined()) grads.push_back(p.grad());
    // fp16: divide the loss scale back out; a step with inf/NaN gradients is skipped.
    const bool finite = scaler_ ? scaler_->unscale(grads) : true;
    torch::Tensor gradNorm;
    {
      NvtxRange range(nvtx::kOptimizer);
      gradNorm = compat::totalNorm(grads);
      if (o_.gradClip > 0) {
        // clip_grad_norm_'s rule, kept on the device (its C++ version reads the norm back).
        const auto coef = (o_.gradClip / (gradNorm + 1e-6)).clamp_max(1.0);
        compat::scaleAll(grads, coef);
      }
      if (finite) optimizer_.step(lr);
    }
    if (scaler_) scaler_->update(finite);
    if (hooks_.afterStep) hooks_.afterStep(step_ + 1);
    timer.stop();
    const double loss = lossSum.item<double>();
    const double dt = timer.seconds();
    if (!std::isfinite(loss))
      throw RunError("train", "loss is " + std::to_string(loss) + " at step " + std::to_string(step_ + 1),
                     "lower lr, raise warmup_steps or enable grad_clip; earlier checkpoints are kept");
    const int64_t s = step_ + 1;
    losses_.push_back(loss);
    emit("train/loss", s, loss);
    for (const auto& [name, value] : parts) emit("train/" + name, s, value);
    emit("train/lr", s, lr);
    emit("train/grad_norm", s, gradNorm.item<double>());
    if (scaler_) emit("train/loss_scale", s, scaler_->currentScale());
    // The first steps pay for allocation and lazy initialisation: not timed.
    if (step_ >= o_.timingWarmup) {
      emit("train/step_time_s", s, dt);
      emit("train/tokens_per_s", s, static_cast<double>(tokensPerStep) / dt);
      emit("train/samples_per_s", s, static_cast<double>(o_.batchSize * o_.gradAccum) / dt);
    }
    const auto mem = probeMemory(device_);
    emit("mem/rss_mb", s, mem.rssMb);
    if (mem.hasCuda) {
      emit("mem/cuda_allocated_mb", s, mem.cudaAllocatedMb);
      emit("mem/cuda_reserved_mb", s, mem.cudaReservedMb);
      emit("mem/cuda_peak_mb", s, mem.cudaPeakMb);
      if (mem.nvml) emit("mem/device_used_mb", s, mem.nvml->usedMb);
    }
    if (sink.progress) sink.progress(s, o_.steps, static_cast<double>(tokensPerStep) / dt);
    if (val_.count > 0 && evaluationDue(o_, s)) {
      lastEval_ = runEval();
      model_->train();
      emit("eval/loss", s, lastEval_->loss);
      emit("eval/perplexity", s, lastEval_->perplexity);
      if (sink.log)
        sink.log("step " + std::to_string(s) + ": train loss " + std::to_string(loss) +
                 ", val loss " + std::to_string(lastEval_->loss) + " (ppl " +
                 std::to_string(lastEval_->perplexity) + ")");
    }
    if (!checkpointRoot.empty() && checkpointDue(o_, s)) {
      ++step_;  // the checkpoint records completed steps
      const auto dir = saveTrainingCheckpoint(checkpointRoot, model_, optimizer_,
                                              {step_, sampler_.cursor()}, o_.keepCheckpoints);
      --step_;
      if (sink.log) sink.log("checkpoint " + dir.string());
    }
  }
  model_->eval();
}

}  // namespace wb
