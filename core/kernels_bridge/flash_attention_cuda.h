// Tensor-facing wrapper of kernels/flash_attention: checks dtype, device, shape and
// strides with precise messages, launches on the current CUDA stream, and exposes an
// autograd-aware entry (forward saves L, backward runs the fused backward kernel).
// Builds everywhere; without the CUDA kernels every call throws RunError.
// Not here: the CPU reference (core/model/attention.h: mathAttention, chunkedFlashAttention).
#pragma once

#include <string>
#include <tuple>

#include "core/torch_compat.h"

namespace wb {

// True when this build has the CUDA kernels (CUDA LibTorch + nvcc).
bool flashKernelBuilt();
// Whether the kernel takes these inputs; `why` says what does not fit when false.
bool flashKernelSupports(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                         std::string* why = nullptr);

struct FlashForwardResult {
  torch::Tensor out;  // [B, H, Tq, D] (stored [B, Tq, H, D])
  torch::Tensor lse;  // fp32 [B, H, Tq], natural log
};

// q [B, H, Tq, D], k and v [B, H, Tk, D], fp16 or bf16 on one CUDA device. Causal
// masking is bottom-right aligned (query i sees keys j <= i + Tk - Tq). `variant`
// picks a tile shape (0: tuned default; benchmarks only).
FlashForwardResult flashAttentionForward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         double scale, bool causal, int variant = 0);
// Returns dQ, dK, dV.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> flashAttentionBackward(
    const torch::Tensor& dout, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
    const torch::Tensor& out, const torch::Tensor& lse, double scale, bool causal, int variant = 0);
// Differentiable attention through the kernels (a torch::autograd::Function).
torch::Tensor flashAttentionCuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                                 bool causal);

int flashForwardVariants();
int flashBackwardVariants();

}  // namespace wb
