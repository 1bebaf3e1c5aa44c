// Unstructured and semi-structured weight pruning for Gpt2: masks from a score (|w| for
// magnitude, |w|·‖x‖ for Wanda: prune_wanda.h) ranked per tensor, per output channel or
// globally; N:M masks; masks re-applied after every optimizer step so pruned weights
// stay zero through fine-tuning; per-tensor and per-layer sparsity reports.
// Not here: structured heads / neurons (prune_structured.h), sparse kernels (zeros
// alone bring no speed-up; callers time a forward pass to show that).
#pragma once

#include <cstdint>
#include <map>
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

enum class PruneScope { PerTensor, PerOutput, Global };

// Importance of every weight entry, by parameter name, same shape as the weight
// (higher = keep). Absent names score |w|.
using WeightScores = std::map<std::string, torch::Tensor>;

// Zeros the `sparsity` fraction of lowest-scoring entries (|w| unless `scores` says
// otherwise). PerTensor: exactly round(sparsity * numel) in each tensor (ties broken
// by position); PerOutput: round(sparsity * in) in every output column (Wanda's
// comparison group); Global: one ranking over all selected tensors, so layers end up
// with different sparsities.
PruneMasks magnitudePrune(Gpt2& model, const std::vector<std::string>& modules, double sparsity,
                          PruneScope scope, const WeightScores* scores = nullptr);

// N:M masks: in every group of `m` consecutive *input* rows of a [in, out] weight
// (one group per output column), the `n` largest |w| stay. The groups run along the
// input dimension because that is the reduction (K) dimension of y = x W, which is
// what 2:4 sparse tensor cores compress. `in` must be a multiple of m.
// Ranked by `scores` when given (Wanda N:M), else by |w|.
PruneMasks nmPrune(Gpt2& model, const std::vector<std::string>& modules, int64_t n, int64_t m,
                   const WeightScores* scores = nullptr);

struct SparsityRow {
  std::string name;
  int64_t numel = 0, zeros = 0;
  double sparsity() const { return numel ? static_cast<double>(zeros) / static_cast<double>(numel) : 0.0; }
};
// One row per selected weight plus a final "total" row.
std::vector<SparsityRow> sparsityReport(Gpt2& model, const std::vector<std::string>& modules);
// The rows of sparsityReport() summed per transformer layer ("layer 0", ...), in layer
// order, without the total row.
std::vector<SparsityRow> layerSparsity(const std::vector<SparsityRow>& rows);

}  // namespace wb
