// Splitting GPT-2's blocks into pipeline stages: contiguous runs of layers, at least
// one per stage, the embeddings on the first stage and ln_f + LM head on the last.
// Either balanced (minimise the largest stage's parameter count) or an explicit
// `balance` list of layers per stage. Torch-free: costs come in as numbers; errors
// carry the profile's JSON pointers (/parallel/...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wb {

struct StagePlan {
  int64_t firstLayer = 0, endLayer = 0;  // blocks [firstLayer, endLayer)
  bool embeddings = false;               // wte + wpe (first stage)
  bool head = false;                     // ln_f + LM head (last stage)
  int64_t cost = 0;                      // parameters, the head's tied copy included
  int64_t layers() const { return endLayer - firstLayer; }
};

// layerCosts: one entry per block. The partition minimising the largest stage cost;
// among equal ones, the one with the earliest cuts.
std::vector<StagePlan> balancedPartition(const std::vector<int64_t>& layerCosts,
                                         int64_t embeddingCost, int64_t headCost, int stages);
// balance[i] layers on stage i; must have one entry per stage and sum to the layer count.
std::vector<StagePlan> explicitPartition(const std::vector<int64_t>& layerCosts,
                                         int64_t embeddingCost, int64_t headCost,
                                         const std::vector<int64_t>& balance);

std::string describe(const std::vector<StagePlan>& plan);  // "0-5 | 6-11" for logs

}  // namespace wb
