// Wanda-style pruning scores (Sun et al. 2023): |W_ij| · ‖X_i‖₂, where ‖X_i‖ is the L2
// norm of input feature i over calibration tokens, so a small weight on a loud input
// channel outranks a larger one on a quiet channel. The norms are gathered by running
// calibration batches through the model with recording adapters on the selected Conv1Ds.
// The masks themselves come from prune.h (magnitudePrune / nmPrune with these scores).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/techniques/prune.h"

namespace wb {

// `count` batches of [batch, seqLen] int64 windows from a token array, at offsets drawn
// by BatchSampler with `seed` (deterministic, the same on every device).
std::vector<torch::Tensor> calibrationBatches(const uint16_t* tokens, int64_t tokenCount, int64_t seqLen,
                                              int64_t batch, int64_t count, uint64_t seed);

// ‖X_i‖₂ per input feature of every selected Conv1D weight (fp32 [in], on the CPU), by
// weight parameter name, over all tokens of `batches` (eval mode, no grad; adapters
// already attached, e.g. unmerged LoRA, keep working and are restored afterwards).
std::map<std::string, torch::Tensor> inputNorms(Gpt2& model, const std::vector<std::string>& modules,
                                                const std::vector<torch::Tensor>& batches);

// |W| · ‖X‖ broadcast over the output dimension, for every weight `norms` names.
WeightScores wandaScores(Gpt2& model, const std::vector<std::string>& modules,
                         const std::map<std::string, torch::Tensor>& norms);

}  // namespace wb
