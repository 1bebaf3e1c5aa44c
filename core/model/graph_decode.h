// Batch-1 greedy decode with every single-token step captured once in a CUDA graph
// over a static KV cache: the position lives on the device (KvCache static mode), the
// graph also takes the argmax and feeds it back as the next input, so N tokens cost N
// graph launches and one copy to the host at the end. The prompt is prefilled eagerly.
// The step is either LibTorch's ops (the model's own forward) or the fused kernels of
// core/model/fused_decode.h (fp16 or int4 weights). Needs a CUDA build and device;
// elsewhere construction throws InputError. Not here: sampling other than greedy, batches > 1.
#pragma once

#include <memory>
#include <vector>

#include "core/model/fused_decode.h"
#include "core/model/gpt2.h"

namespace wb {

struct GraphDecodeOptions {
  bool fused = false;  // the step through kernels/decode instead of the model's forward
  FusedDecodeOptions fusedOptions;
  // Fused steps only: also capture a graph of this many consecutive steps, which replay()
  // launches for whole multiples of it; inside it each step's first kernel starts by
  // programmatic launch beside the previous step's argmax instead of after a graph
  // boundary (measured 0.3-0.7 us/token faster on H100, docs/PERF.md). 1: one step per graph only.
  int64_t stepsPerGraph = 8;
};

class GraphDecoder {
 public:
  // `model` must be on a CUDA device; its weights' dtype is the decode dtype. Prompt
  // plus new tokens must fit `capacity` (<= n_positions). Captures the graph here.
  GraphDecoder(Gpt2 model, int64_t capacity, const GraphDecodeOptions& options = {});
  ~GraphDecoder();
  GraphDecoder(const GraphDecoder&) = delete;
  GraphDecoder& operator=(const GraphDecoder&) = delete;

  // Eager prefill of `prompt` into the cache; its argmax is the first new token.
  void prefill(const std::vector<int64_t>& prompt);
  // `steps` more tokens by graph launches (steps / stepsPerGraph of the multi-step graph,
  // the rest one step each); no host synchronisation.
  void replay(int64_t steps);
  // The tokens produced since the last prefill (synchronises).
  std::vector<int64_t> generated() const;
  // prefill + replay(newTokens - 1) + generated().
  std::vector<int64_t> greedy(const std::vector<int64_t>& prompt, int64_t newTokens);
  int64_t capacity() const { return capacity_; }
  // A copy of the logits of the last replayed step ([vocab], the weights' dtype).
  torch::Tensor lastLogits() const;
  // Weight bytes one fused step reads (0 for the LibTorch step).
  int64_t fusedWeightBytes() const;
  // Whether the captured step is the persistent kernel (FusedDecodeOptions::persistent
  // asked for it and this device and model could take it).
  bool fusedPersistent() const;
  // Whether the fused step runs the attention-block kernels (FusedDecodeOptions::attentionBlock).
  bool fusedAttentionBlock() const;
  // Whether it runs the MLP blocks too (FusedDecodeOptions::mlpBlock, where they apply).
  bool fusedMlpBlock() const;
  // Whether its int4 LM head runs in row tiles (FusedDecodeOptions::lmHeadRowTiles, where they apply).
  bool fusedLmHeadTiles() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t capacity_ = 0, promptLength_ = 0, replays_ = 0;
};

// Greedy tokens the ordinary eager way (KV cache, one forward per token, argmax on the
// device, no host synchronisation until the end): the reference the graph must match.
std::vector<int64_t> eagerGreedy(Gpt2& model, const std::vector<int64_t>& prompt, int64_t newTokens);

}  // namespace wb
