// Activation checkpointing (torch.utils.checkpoint, reentrant flavour) for LibTorch
// C++, which has none: the forward keeps only the input; backward recomputes the
// function with grad enabled, under the same autocast state and RNG state as the
// forward, and back-propagates through the recomputation. Parameters used inside
// the function get their gradients by accumulation, as leaves do.
#pragma once

#include <functional>

#include "core/torch_compat.h"

namespace wb {

using CheckpointFn = std::function<torch::Tensor(const torch::Tensor&)>;

// fn(x) whose intermediate activations are freed and recomputed in backward. `x`
// must require grad (the residual stream of a model does) for backward to reach it.
torch::Tensor checkpointed(CheckpointFn fn, const torch::Tensor& x);

}  // namespace wb
