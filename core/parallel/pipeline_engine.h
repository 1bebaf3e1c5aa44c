// Runs a Gpt2 as a pipeline x data-parallel grid: partitions it into stages, keeps one
// replica of the model per data-parallel rank, and per pass runs every local rank's
// schedule (schedule.h) on its own worker thread, micro-batches flowing through the
// CommBackend's Transport. Then: gradient mean over replicas (bucketed, each bucket
// started from autograd hooks as the last backward finishes its gradients, so it
// overlaps the rest of the backward), tied-gradient sync, global-norm clipping and one
// AdamW per rank. Cancel or any rank's error
// aborts the backend so every worker wakes and ends; the pass then throws Cancelled
// or that first error. The backend is in-process (threads) unless a CommFactory is
// given (NCCL: nccl_transport.h); under torchrun this process drives one rank only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "core/model/gpt2.h"
#include "core/parallel/partition.h"
#include "core/parallel/pipeline_stage.h"
#include "core/parallel/schedule.h"
#include "core/parallel/timeline.h"
#include "core/run/cancel_token.h"
#include "core/train/adamw.h"
#include "core/train/amp.h"

namespace wb {

struct PipelineOptions {
  int stages = 2;
  int64_t microBatches = 4;  // per replica and pass
  ScheduleKind schedule = ScheduleKind::OneFOneB;
  std::vector<double> balance;  // layers per stage (halves allowed); empty: balanced by parameter count
  bool checkpoint = false;
  int dataParallel = 1;
  // One per world rank (rank = replica * stages + stage); empty: all on the model's device.
  std::vector<torch::Device> devices;
  // Ranks driven by this process; empty: all (one worker thread each).
  std::vector<int> localRanks;
  CommFactory comm;               // empty: in-process
  Precision precision = Precision::Fp32;  // bf16: autocast in every worker thread
  int64_t bucketBytes = 25 << 20;         // gradient all-reduce buckets
  AdamWOptions adamw;
  // Called on a stage's worker before each instruction (tests: slow a stage, fail one).
  std::function<void(int stage, const Instruction&)> beforeInstruction;
};

struct PassResult {
  double loss = 0.0;  // mean over replicas of the sum of micro-batch losses (each divided)
  std::vector<StageTimeline> timelines;  // per stage (replica 0's, or this process's)
  std::vector<StageTiming> timing;
  double bubble = 0.0, theoreticalBubble = 0.0;
  double wallS = 0.0;
  double reduceS = 0.0;          // gradient all-reduce, host wall time to completion
  std::vector<size_t> peakLive;  // micro-batches held at once, per stage
  // Multi-process runs (torchrun): every world rank's device memory after the step's
  // last pass (caching allocator, MB), gathered so rank 0's run reports all GPUs; else
  // (and after earlier passes) empty.
  struct RankMemory {
    double allocatedMb = 0.0, reservedMb = 0.0, peakMb = 0.0;
  };
  std::vector<RankMemory> rankMemory;
};

class PipelineEngine {
 public:
  PipelineEngine(Gpt2 model, PipelineOptions options);
  ~PipelineEngine();

  int stageCount() const { return o_.stages; }
  int replicas() const { return o_.dataParallel; }
  const std::vector<StagePlan>& plan() const { return plan_; }
  // The lowest local replica's stage `s` (throws where this process has none).
  PipelineStage& stage(int s);
  PipelineStage& stageOfRank(int rank);
  bool hasStage(int s) const;
  const PipelineOptions& options() const { return o_; }
  const RankLayout& layout() const { return layout_; }
  std::string backendName();
  // The model of replica `r` (replica 0's is the one the engine was given).
  Gpt2 replicaModel(int r) const;

  void zeroGrad();
  // One schedule over x, y [B, T] (CPU int64): replica r takes rows [r B/D, (r+1) B/D),
  // split into micro_batches equal micro-batches; each micro-batch's loss is divided by
  // `lossDivisor` (micro-batches x accumulation passes) and gradients accumulate.
  // `reduce`: average the gradients over replicas at the end (the step's last pass).
  PassResult forwardBackward(const torch::Tensor& x, const torch::Tensor& y, double lossDivisor,
                             const CancelToken& cancel, bool reduce = true);
  // Sums the tied embedding's gradient of the first and last stage into both (over the
  // transport, as two ranks would). Call once per optimizer step, after the passes.
  void syncTiedGradients(const CancelToken& cancel);
  // Global L2 norm over every parameter once (the tied copy not counted twice, one
  // replica); scales gradients to maxNorm like torch.nn.utils.clip_grad_norm_.
  double clipGradNorm(double maxNorm, const CancelToken& cancel = CancelToken());
  void step(double lr, const CancelToken& cancel = CancelToken());
  const AdamW& optimizer(int s) const;
  // Multi-process (torchrun): copies every stage's trainable weights (replica 0's) into
  // this process's model, so rank 0 can save the whole trained model. One world sum per
  // parameter to which only its owner contributes, so every rank must call it. Nothing
  // to do when this process drives every rank (its stages share one model).
  void gatherModel(const CancelToken& cancel = CancelToken());
  // AdamW's state of the whole model as one Trainer holds it ("exp_avg.<param>",
  // "exp_avg_sq.<param>", CPU tensors sorted by name; the tied head copy's moments
  // equal wte's and are left out): merged from the stages of replica 0, across
  // processes by world sums as gatherModel. Every rank must call it; under torchrun
  // only the process driving rank 0 (the checkpoint writer) gets it, the others an
  // empty list.
  std::vector<std::pair<std::string, torch::Tensor>> gatherOptimizerState(const CancelToken& cancel = CancelToken());
  // Loads such a state (a Trainer's or a pipeline's checkpoint) into every local
  // stage's AdamW; the tied head copy takes wte's moments.
  void loadOptimizerState(const std::map<std::string, torch::Tensor>& state, int64_t steps);
  int64_t optimizerSteps() const;
  // After the model's weights were replaced (resume): copies them into the other local
  // replicas' models and every last stage's tied head copy.
  void reloadFromModel();
  // Whether this process drives world rank 0 (the one that writes the run).
  bool drivesRankZero() const;

 private:
  struct Rank;
  // Runs fn(rank) on one worker thread per local rank (device, stream, grad mode and
  // autocast set); see the header comment for how errors and cancel end it.
  void onEveryRank(const std::function<void(Rank&, CommBackend&)>& fn, const CancelToken& cancel);
  CommBackend& backend();
  Gpt2 model_;
  PipelineOptions o_;
  RankLayout layout_;
  std::vector<StagePlan> plan_;
  std::vector<Gpt2> replicaModels_;  // by replica; undefined where not local
  std::vector<std::unique_ptr<Rank>> ranks_;
  std::unique_ptr<CommBackend> backend_;
};

// Per-layer, embedding and head parameter counts of `model`, the partitioner's costs.
struct PartitionCosts {
  std::vector<int64_t> halves;  // two per block: its attention half, its MLP half
  int64_t embeddings = 0, head = 0;
};
PartitionCosts partitionCosts(Gpt2Impl& model);
// Costs by compute instead: a block's matmul weights plus its attention (T x n_embd
// per token), the embeddings free (a lookup), the head its vocab x n_embd matmul.
PartitionCosts computeCosts(const Gpt2Config& config, int64_t seqLen);

// A copy of `model` (same config, parameters, buffers and attention backend).
Gpt2 cloneModel(Gpt2& model);

}  // namespace wb
