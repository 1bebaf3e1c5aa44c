// Weight pruning for Gpt2: magnitude (unstructured, per tensor or global), N:M
// semi-structured masks, masks that can be re-applied after every optimizer step so
// pruned weights stay zero through fine-tuning, a per-tensor sparsity report, and
// structured attention-head pruning that physically shrinks c_attn / c_proj.
// Not here: Wanda-style activation-aware scores, MLP-neuron pruning, sparse kernels
// (zeros alone bring no speed-up; callers time a forward pass to show that).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/model/gpt2.h"

namespace wb {

// Module suffixes a pruning pass may target, as in HF names.
const std::vector<std::string>& prunableModules();  // c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj

// The [in, out] Conv1D weights of `modules` (suffixes from prunableModules()), by name.
std::vector<std::pair<std::string, torch::Tensor>> selectWeights(Gpt2& model,
                                                                 const std::vector<std::string>& modules);

// 0/1 masks (same dtype and device as the weights), by parameter name.
class PruneMasks {
 public:
  void set(const std::string& name, torch::Tensor weight, torch::Tensor mask);
  // weight *= mask for every entry, without autograd; cheap enough to call after
  // every optimizer step.
  void apply() const;
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string name;
    torch::Tensor weight, mask;
  };
  std::vector<Entry> entries_;
};

enum class PruneScope { PerTensor, Global };

// Zeros the `sparsity` fraction of smallest-|w| entries. PerTensor: exactly
// round(sparsity * numel) in each tensor (ties broken by position); Global: one
// ranking over all selected tensors, so layers end up with different sparsities.
PruneMasks magnitudePrune(Gpt2& model, const std::vector<std::string>& modules, double sparsity,
                          PruneScope scope);

// N:M masks: in every group of `m` consecutive *input* rows of a [in, out] weight
// (one group per output column), the `n` largest |w| stay. The groups run along the
// input dimension because that is the reduction (K) dimension of y = x W, which is
// what 2:4 sparse tensor cores compress. `in` must be a multiple of m.
PruneMasks nmPrune(Gpt2& model, const std::vector<std::string>& modules, int64_t n, int64_t m);

struct SparsityRow {
  std::string name;
  int64_t numel = 0, zeros = 0;
  double sparsity() const { return numel ? static_cast<double>(zeros) / static_cast<double>(numel) : 0.0; }
};
// One row per selected weight plus a final "total" row.
std::vector<SparsityRow> sparsityReport(Gpt2& model, const std::vector<std::string>& modules);

// Head importance: L2 norm of everything the head owns (its q, k, v columns of
// c_attn with biases, and its rows of c_proj). [n_layer][heads].
std::vector<std::vector<double>> headImportance(Gpt2& model);
// Zeroes the given heads' c_proj rows: the model computes exactly what the pruned
// model computes, but keeps its shapes (the reference for structural pruning).
void maskHeads(Gpt2& model, const std::vector<std::vector<int64_t>>& pruneHeads);
// Removes the given heads per layer (physically shrinking c_attn and c_proj); GPT-2's
// config has one n_head, so the per-layer counts live in the attention modules and
// config.n_head keeps the original (largest) count.
void removeHeads(Gpt2& model, const std::vector<std::vector<int64_t>>& pruneHeads);
// The `perLayer` least important heads of every layer (same number in each layer, so
// the model stays rectangular), ascending head indices.
std::vector<std::vector<int64_t>> leastImportantHeads(Gpt2& model, int64_t perLayer);

}  // namespace wb
