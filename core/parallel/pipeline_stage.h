// One pipeline stage of a Gpt2: its slice of blocks, possibly starting or ending at a
// block's middle (plus wte/wpe on the first stage, ln_f and the LM head on the last), run one micro-batch at a time with the autograd
// state kept per micro-batch until its backward. The stage works on the model's own
// modules (moved to the stage's device), so gradients land on the model's parameters;
// the only copy is the last stage's LM-head weight when embeddings are tied (see
// tiedWeight()). Not here: scheduling and communication (pipeline_engine.h).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/model/gpt2.h"
#include "core/parallel/partition.h"
#include "core/parallel/transport.h"

namespace wb {

class PipelineStage {
 public:
  // `checkpoint`: keep only each micro-batch's input and recompute the forward pass in
  // backward (activation checkpointing).
  PipelineStage(Gpt2 model, const StagePlan& plan, int index, int stages, torch::Device device,
                bool checkpoint);

  int index() const { return index_; }
  bool first() const { return plan_.embeddings; }
  bool last() const { return plan_.head; }
  const StagePlan& plan() const { return plan_; }
  const torch::Device& device() const { return device_; }

  // Model names (transformer.h.3.attn.c_attn.weight, ...); the tied head copy is
  // kTiedCopy, the name an untied head has, so checkpoints need no mapping.
  static constexpr const char* kTiedCopy = "lm_head.weight";
  const std::vector<std::pair<std::string, torch::Tensor>>& parameters() const { return params_; }
  // The tied embedding as this stage holds it: wte on the first stage, its copy on the
  // last (undefined elsewhere, and when the model unties its head or N == 1). After
  // backward both gradients are summed into both copies (PipelineEngine), so the two
  // AdamW updates are identical and the copies never drift apart.
  torch::Tensor tiedWeight() const { return tied_; }
  bool ownsTiedCopy() const { return last() && !first() && tied_.defined(); }
  // Sets the tied copy to the model's wte again (after a resume replaced the weights).
  void refreshTiedCopy();

  // First stage: input is ids [b, T] (int64). Others: hidden states [b, T, C].
  // Returns the hidden states to send on, or on the last stage the micro-batch's loss
  // (mean next-token cross-entropy over its tokens, divided by `lossDivisor`).
  torch::Tensor forward(int64_t microBatch, const torch::Tensor& input,
                        const torch::Tensor& targets, double lossDivisor);
  // gradOutput: d loss / d output from the next stage (undefined on the last stage).
  // Returns d loss / d input to send back (undefined on the first stage).
  torch::Tensor backward(int64_t microBatch, const torch::Tensor& gradOutput);
  // What the stage's hidden-state messages look like for a micro-batch of `rows`.
  TensorMeta hiddenMeta(int64_t rows, int64_t seqLen) const;

  // (Re)places the stage's modules on its device, e.g. after the whole model was
  // gathered on one device for evaluation.
  void placeOnDevice();

  size_t live() const { return saved_.size(); }
  size_t peakLive() const { return peakLive_; }
  void resetPeak() { peakLive_ = saved_.size(); }
  void dropSaved() { saved_.clear(); }

 private:
  torch::Tensor run(const torch::Tensor& input, const torch::Tensor& targets, double lossDivisor);
  struct Saved {
    torch::Tensor input, output, targets;  // output undefined when checkpointing
    double lossDivisor = 1.0;
  };
  Gpt2 model_;
  StagePlan plan_;
  int index_;
  torch::Device device_;
  bool checkpoint_;
  struct Piece {  // one block, or the half of it the plan gives this stage
    Gpt2Block block;
    bool attention = true, mlp = true;
  };
  std::vector<Piece> pieces_;
  torch::Tensor tied_, head_;  // head_: the weight the logits use on the last stage
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::map<int64_t, Saved> saved_;
  size_t peakLive_ = 0;
};

}  // namespace wb
