// Tensor-facing wrapper of kernels/softmax_xent: the row-wise softmax cross-entropy of
// 16-bit logits with its gradient written in place. Checks dtype, device, layout and
// shape, launches on the current CUDA stream. Without the CUDA kernels every call
// throws. The CPU reference and the dispatch are in core/train/softmax_xent.h.
#pragma once

#include "core/torch_compat.h"

namespace wb {

bool softmaxXentKernelBuilt();

// Whether the kernel takes these logits: fp16/bf16 on CUDA, contiguous [rows, ld] with
// ld a multiple of 8 and at most 65536, 16-byte aligned.
bool softmaxXentKernelFits(const torch::Tensor& logits);

// logits [rows, ld] (first `vocab` columns real), targets int64 [rows] in [0, vocab),
// valid fp32 [rows]; returns the fp32 row losses. With writeGrad the logits become
// softmax - valid * onehot(target), padding columns 0.
torch::Tensor softmaxXentCuda(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& valid,
                              int64_t vocab, bool writeGrad);

}  // namespace wb
