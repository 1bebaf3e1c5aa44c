// Pretraining / fine-tuning loop for Gpt2: AdamW with weight decay on >= 2-D weights,
// warm-up + cosine schedule, gradient accumulation, clipping, periodic evaluation on
// held-out tokens, checkpoints every N steps and exact resume; optional bf16/fp16
// autocast (fp16 with a dynamic loss scaler), fused AdamW, activation checkpointing and
// a chunked LM-head + cross-entropy that never materialises the full logits.
// Step times come from CUDA events on the GPU. Reports through TrainSink so it runs
// the same inside a profile stage and in a unit test. Not here: multi-GPU.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/bench/evaluator.h"
#include "core/model/gpt2.h"
#include "core/run/cancel_token.h"
#include "core/train/adamw.h"
#include "core/train/amp.h"
#include "core/train/batch_sampler.h"

namespace wb {

struct TrainOptions {
  int64_t steps = 200;
  int64_t batchSize = 8;
  int64_t gradAccum = 1;
  int64_t seqLen = 256;
  double lr = 6e-4, minLr = 6e-5;
  int64_t warmupSteps = 20;
  AdamWOptions adamw;
  double gradClip = 1.0;  // 0: no clipping
  int64_t evalEvery = 50;  // 0: only at the end
  int64_t evalWindows = 100;
  int64_t evalBatchSize = 8;
  int64_t checkpointEvery = 0;  // 0: none
  // Also checkpoint after exactly these step counts (e.g. the ends of chosen epochs).
  std::vector<int64_t> checkpointSteps;
  int keepCheckpoints = 2;
  int64_t timingWarmup = 2;  // first steps excluded from timing series
  Precision precision = Precision::Fp32;  // autocast dtype over fp32 master weights
  GradScalerOptions gradScaler;           // fp16 only
  bool activationCheckpointing = false;
  // The default next-token loss through fusedLmHeadLoss (core/train/fused_lm_loss.h):
  // LM head and cross-entropy in chunks of rows, so the [tokens, vocab] logits and their
  // fp32 copies never exist; the same loss and gradients. Not with hooks.loss/forward.
  bool fusedLmHeadLoss = false;
  int64_t lmHeadChunkRows = 4096;  // rows per chunk of the fused loss
  // The fused loss's softmax cross-entropy through the CUDA kernel where it fits
  // (core/train/softmax_xent.h); false: LibTorch ops (the reference), for A/B timing.
  bool lossKernel = true;
  // Gradients dropped between steps rather than zeroed (AdamW::zeroGrad); every GPT-2
  // parameter gets a gradient each step, so the update is the same.
  bool gradsToNone = true;
  uint64_t seed = 1337;
};
// After `step` completed steps: whether to evaluate (every evalEvery, and after the
// last) and whether to checkpoint (every checkpointEvery and after the last, plus the
// listed checkpointSteps). One rule for Trainer and PipelineTrainer.
bool evaluationDue(const TrainOptions& o, int64_t step);
bool checkpointDue(const TrainOptions& o, int64_t step);

struct TokenSpan {
  const uint16_t* data = nullptr;
  int64_t count = 0;
  std::string source;
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// A custom objective's result: the loss to minimise and named parts to report, each
// emitted as train/<name> (summed over a step's micro-batches like train/loss).
struct LossParts {
  torch::Tensor loss;
  NamedTensors parts;
};
// logits [B, T, vocab] of the trained model; x and y [B, T] on the model's device, y
// already shifted by one (BatchSampler), so logits[:, i] predicts y[:, i].
using LossFn = std::function<LossParts(const torch::Tensor& logits, const torch::Tensor& x,
                                       const torch::Tensor& y)>;

// What distillation and LoRA change about the loop, leaving the loop itself shared.
struct TrainHooks {
  LossFn loss;             // empty: next-token cross-entropy
  NamedTensors parameters;  // empty: the model's parameters that require grad
  // empty: model->forward(x). Lets an objective keep intermediate results (hidden
  // states) or a probe measure the forward pass; must return the model's logits.
  std::function<torch::Tensor(const torch::Tensor& x)> forward;
  // Called after every optimizer step with the completed step count, e.g. to re-apply
  // pruning masks so pruned weights stay zero (core/techniques/prune.h). A hook, not an
  // option: options are copied between loops (a distill baseline), callbacks are not.
  std::function<void(int64_t step)> afterStep;
};

// Where the loop's numbers and messages go.
struct TrainSink {
  std::function<void(const std::string& series, int64_t step, double value)> sample;
  std::function<void(const std::string& text)> log;
  std::function<void(int64_t step, int64_t total, double tokensPerSecond)> progress;
};

class Trainer {
 public:
  Trainer(Gpt2 model, TrainOptions options, TokenSpan train, TokenSpan val, TrainHooks hooks = {});
  // Continues from a checkpoint folder written by this trainer.
  void resumeFrom(const std::filesystem::path& checkpointDir);
  // Runs to options.steps; checkpoints go under `checkpointRoot` (empty: none).
  void run(const TrainSink& sink, const CancelToken& cancel,
           const std::filesystem::path& checkpointRoot = {});

  int64_t step() const { return step_; }
  const std::vector<double>& losses() const { return losses_; }  // one per optimizer step
  std::optional<EvalResult> lastEval() const { return lastEval_; }
  const AdamW& optimizer() const { return optimizer_; }

 private:
  EvalResult runEval();
  Gpt2 model_;
  TrainOptions o_;
  TokenSpan train_, val_;
  TrainHooks hooks_;
  BatchSampler sampler_;
  AdamW optimizer_;
  torch::Device device_;
  int64_t step_ = 0;
  std::vector<double> losses_;
  std::optional<EvalResult> lastEval_;
  std::optional<GradScaler> scaler_;
};

// Model parameters in registration order, the optimizer's view.
std::vector<std::pair<std::string, torch::Tensor>> trainableParameters(torch::nn::Module& model);

}  // namespace wb
