// Runs a Gpt2 as a pipeline: partitions it into stages, and per pass runs every
// stage's schedule (schedule.h) on its own worker thread, micro-batches flowing
// through a Transport. Then: tied-gradient sync, global-norm clipping and one AdamW
// per stage. Cancel or any stage's error aborts the transport so every worker wakes
// and ends; the pass then throws Cancelled or that first error. In-process transport
// here; an NCCL rank would run runStageProgram() for its own stage only.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/model/gpt2.h"
#include "core/parallel/partition.h"
#include "core/parallel/pipeline_stage.h"
#include "core/parallel/schedule.h"
#include "core/parallel/timeline.h"
#include "core/run/cancel_token.h"
#include "core/train/adamw.h"

namespace wb {

struct PipelineOptions {
  int stages = 2;
  int64_t microBatches = 4;
  ScheduleKind schedule = ScheduleKind::OneFOneB;
  std::vector<int64_t> balance;  // layers per stage; empty: balanced by parameter count
  bool checkpoint = false;
  std::vector<torch::Device> devices;  // one per stage; empty: all on the model's device
  AdamWOptions adamw;
  // Called on a stage's worker before each instruction (tests: slow a stage, fail one).
  std::function<void(int stage, const Instruction&)> beforeInstruction;
};

struct PassResult {
  double loss = 0.0;  // sum of the micro-batch losses (each already divided)
  std::vector<StageTimeline> timelines;
  std::vector<StageTiming> timing;
  double bubble = 0.0, theoreticalBubble = 0.0;
  double wallS = 0.0;
  std::vector<size_t> peakLive;  // micro-batches held at once, per stage
};

class PipelineEngine {
 public:
  PipelineEngine(Gpt2 model, PipelineOptions options);
  ~PipelineEngine();

  int stageCount() const { return static_cast<int>(stages_.size()); }
  const std::vector<StagePlan>& plan() const { return plan_; }
  PipelineStage& stage(int s) { return *stages_[static_cast<size_t>(s)]; }
  const PipelineOptions& options() const { return o_; }

  void zeroGrad();
  // One schedule over x, y [B, T] (CPU int64, B divisible by micro_batches); each
  // micro-batch's loss is divided by `lossDivisor` (micro-batches x accumulation
  // passes) and gradients accumulate.
  PassResult forwardBackward(const torch::Tensor& x, const torch::Tensor& y, double lossDivisor,
                             const CancelToken& cancel);
  // Sums the tied embedding's gradient of the first and last stage into both (over the
  // transport, as two ranks would). Call once per optimizer step, after the passes.
  void syncTiedGradients(const CancelToken& cancel);
  // Global L2 norm over every parameter once (the tied copy not counted twice);
  // scales gradients to maxNorm like torch.nn.utils.clip_grad_norm_. Returns the norm.
  double clipGradNorm(double maxNorm);
  void step(double lr);
  const AdamW& optimizer(int s) const { return *optimizers_[static_cast<size_t>(s)]; }

 private:
  // Runs fn(stage, transport) on one worker thread per stage; see the header comment
  // for how errors and cancel end it.
  void onEveryStage(const std::function<void(int, Transport&)>& fn, const CancelToken& cancel);
  Gpt2 model_;
  PipelineOptions o_;
  std::vector<StagePlan> plan_;
  std::vector<std::unique_ptr<PipelineStage>> stages_;
  std::vector<std::unique_ptr<AdamW>> optimizers_;
  std::vector<std::vector<Instruction>> programs_;
};

// Per-layer, embedding and head parameter counts of `model`, the partitioner's costs.
struct PartitionCosts {
  std::vector<int64_t> layers;
  int64_t embeddings = 0, head = 0;
};
PartitionCosts partitionCosts(Gpt2Impl& model);

}  // namespace wb
