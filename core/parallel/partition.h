// Splitting GPT-2's blocks into pipeline stages: contiguous runs of half-blocks, at least
// one per stage, the embeddings on the first stage and ln_f + LM head on the last.
// A block has two residual halves (attention, then MLP) and a cut between them passes
// the same [b, T, C] hidden state as a cut between blocks, so stages may hold a whole
// or half number of layers: with integer layers a 24-layer GPT-2 medium and its head
// (~3.2 blocks of time) cannot be split evenly over 4 GPUs. Either balanced (minimise
// the largest stage cost) or an explicit `balance` list of layers per stage. Torch-free:
// costs come in as numbers; errors carry the profile's JSON pointers (/parallel/...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wb {

struct StagePlan {
  // Half-blocks [begin, end): 2l is block l's attention half (ln_1, attention, residual
  // add), 2l + 1 its MLP half (ln_2, MLP, residual add).
  int64_t begin = 0, end = 0;
  bool embeddings = false;  // wte + wpe (first stage)
  bool head = false;        // ln_f + LM head (last stage)
  int64_t cost = 0;         // in the costs' unit, the head's tied copy included
  int64_t firstLayer() const { return begin / 2; }
  int64_t endLayer() const { return (end + 1) / 2; }  // blocks [firstLayer, endLayer) touched
  double layers() const { return static_cast<double>(end - begin) / 2.0; }
  bool hasAttention(int64_t layer) const { return begin <= 2 * layer && 2 * layer < end; }
  bool hasMlp(int64_t layer) const { return begin <= 2 * layer + 1 && 2 * layer + 1 < end; }
};

// halfCosts: two entries per block (attention half, MLP half). Cuts fall between blocks
// unless `halfCuts`. The partition minimising the largest stage cost; among equal ones,
// the one with the earliest cuts.
std::vector<StagePlan> balancedPartition(const std::vector<int64_t>& halfCosts, int64_t embeddingCost,
                                         int64_t headCost, int stages, bool halfCuts = false);
// balance[i] layers on stage i, each a positive multiple of 0.5; one entry per stage,
// summing to the layer count.
std::vector<StagePlan> explicitPartition(const std::vector<int64_t>& halfCosts, int64_t embeddingCost,
                                         int64_t headCost, const std::vector<double>& balance);
// balance[index] in half-blocks; throws ProfileError at /parallel/balance/<index> unless
// it is a positive multiple of 0.5.
int64_t balanceHalves(double layers, size_t index);
std::string halvesText(int64_t halves);  // 13 -> "6.5", 14 -> "7"

std::string describe(const std::vector<StagePlan>& plan);  // "emb+h0-5 | h6-8.attn | h8.mlp-11+head"

}  // namespace wb
