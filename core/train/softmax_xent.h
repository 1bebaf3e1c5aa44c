// One chunk of the training loss: the softmax cross-entropy of [rows, ld] logits whose
// first `vocab` columns are real (the rest is the LM head's vocabulary padding, see
// core/model/vocab_padding.h), with the gradient softmax - valid * onehot(target).
// On CUDA with 16-bit logits the fused kernel (kernels/softmax_xent) does it in one
// pass over the logits, in place; elsewhere LibTorch ops do it in fp32 (the reference).
#pragma once

#include <cstdint>

#include "core/torch_compat.h"

namespace wb {

enum class XentImpl { Auto, Reference, Kernel };

struct SoftmaxXent {
  torch::Tensor rowLoss;  // fp32 [rows]: valid * (logsumexp - logit[target])
  torch::Tensor grad;     // logits' dtype [rows, ld], padding columns 0; undefined without wantGrad
};

// Consumes the logits: the kernel overwrites them with the gradient, and the reference
// frees them (when the caller moved them in) before its fp32 log-softmax allocates.
// targets int64 [rows] in [0, vocab) (ignored rows carry any valid id and valid 0),
// valid fp32 [rows]. XentImpl::Kernel throws when the kernel cannot take the logits.
SoftmaxXent softmaxXent(torch::Tensor logits, const torch::Tensor& targets, const torch::Tensor& valid, int64_t vocab,
                        bool wantGrad, XentImpl impl = XentImpl::Auto);

// The LibTorch-op reference, the same contract.
SoftmaxXent softmaxXentReference(torch::Tensor logits, const torch::Tensor& targets, const torch::Tensor& valid,
                                 int64_t vocab, bool wantGrad);

}  // namespace wb
