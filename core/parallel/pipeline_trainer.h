// The training loop of the train stage when parallel.pipeline_stages > 1: the same
// options, data order, loss (mean next-token cross-entropy), warm-up + cosine
// schedule, clipping and AdamW as Trainer, with each batch pushed through a
// PipelineEngine in micro-batches. Emits Trainer's series plus per-stage timing
// (pipeline/stage<k>/{forward,backward,comm,idle}_ms) and the measured and
// theoretical bubble, the all-reduce time and per-GPU memory. With data_parallel D the
// batch_size rows of a pass are split over the replicas (the same global batch as one
// device). Checkpoints are Trainer's folders (the stages' weights and AdamW moments
// merged, written by the process holding rank 0), so either loop resumes the other's.
#pragma once

#include "core/parallel/pipeline_engine.h"
#include "core/train/trainer.h"

namespace wb {

class PipelineTrainer {
 public:
  // Of the hooks only afterStep applies (the loss is fixed: mean next-token
  // cross-entropy); a loss, forward or parameter list is refused.
  PipelineTrainer(Gpt2 model, TrainOptions options, PipelineOptions pipeline, TokenSpan train,
                  TokenSpan val, TrainHooks hooks = {});
  // Continues from a checkpoint folder of this trainer or of Trainer.
  void resumeFrom(const std::filesystem::path& checkpointDir);
  // Runs to options.steps; checkpoints go under `checkpointRoot` (empty: none). Every
  // process must get the same root decision: saving is collective under torchrun.
  void run(const TrainSink& sink, const CancelToken& cancel, const std::filesystem::path& checkpointRoot = {});

  int64_t step() const { return step_; }
  const std::vector<double>& losses() const { return losses_; }
  std::optional<EvalResult> lastEval() const { return lastEval_; }
  PipelineEngine& engine() { return engine_; }

 private:
  EvalResult runEval();
  bool canEvaluate() const;
  Gpt2 model_;
  TrainOptions o_;
  TrainHooks hooks_;
  TokenSpan train_, val_;
  BatchSampler sampler_;
  PipelineEngine engine_;
  int64_t step_ = 0;
  std::vector<double> losses_;
  std::optional<EvalResult> lastEval_;
};

}  // namespace wb
