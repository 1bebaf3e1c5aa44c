// Next-token cross-entropy fused with the LM head for training: the rows of the final
// hidden states are taken in chunks, each chunk's logits (h W^T, in the autocast dtype)
// go through the softmax cross-entropy of core/train/softmax_xent.h (a fused kernel on
// CUDA, an fp32 log-softmax elsewhere), and the gradients for h and W are formed right
// there, so the [rows, vocab] logits never exist for the whole batch (the backward only
// scales the saved gradients). Not here: label smoothing, reductions other than the mean.
#pragma once

#include <cstdint>

#include "core/torch_compat.h"
#include "core/train/softmax_xent.h"

namespace wb {

struct FusedLmLossOptions {
  // Rows per chunk: the transient memory is about rows x vocab x 8 bytes (the fp32
  // logits and their log-softmax; later the fp32 probabilities and their 16-bit copy).
  int64_t chunkRows = 4096;
  int64_t ignoreIndex = -100;  // targets equal to it add no loss and no gradient
  XentImpl xent = XentImpl::Auto;  // Reference: LibTorch ops even where the kernel fits
};

// Mean over the targets != ignoreIndex of -log softmax(hidden W^T)[target], as a 0-d
// fp32 tensor; the same value as cross_entropy(matmul(hidden, W^T).float(), targets).
// hidden [..., d] (any float dtype), weight [vocab, d], targets int64 [...] with the
// hidden's leading shape. The two matmuls run in the autocast dtype when autocast is on
// for hidden's device, else in hidden's dtype. With every target ignored the loss is
// NaN (as cross_entropy's) and the gradients are zero. Gradients are computed only when
// grad mode is on and hidden or weight requires them.
torch::Tensor fusedLmHeadLoss(const torch::Tensor& hidden, const torch::Tensor& weight,
                              const torch::Tensor& targets, const FusedLmLossOptions& options = {});

}  // namespace wb
