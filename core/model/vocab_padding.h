// GPT-2's vocabulary (50257) is odd: [rows, vocab] matmul operands then have an
// unaligned leading dimension, and cuBLAS falls back to slow generic kernels
// (docs/PERF.md, "The vocabulary padded"). The LM-head matmuls (Gpt2::logitsFromHidden,
// fusedLmHeadLoss) multiply by the weight padded with zero rows instead and use the
// real columns only.
#pragma once

#include <torch/torch.h>

namespace wb {

inline int64_t paddedVocab(int64_t vocab) { return (vocab + 63) / 64 * 64; }

// [vocab, d] -> [paddedVocab(vocab), d] with zero rows appended (the tensor itself
// when no padding is needed); differentiable, so the gradient reaches `weight`.
inline torch::Tensor padVocabRows(const torch::Tensor& weight) {
  const int64_t vocab = weight.size(0), padded = paddedVocab(vocab);
  if (padded == vocab) return weight;
  return torch::cat({weight, torch::zeros({padded - vocab, weight.size(1)}, weight.options())});
}

}  // namespace wb
