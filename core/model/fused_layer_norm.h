// LayerNorm for mixed-precision training on CUDA: fp32 residual-stream activations in,
// the autocast dtype out, through kernels/layernorm (core/kernels_bridge/layernorm_cuda.h),
// as one autograd Function whose backward takes the 16-bit output gradient. Not here:
// inference-only paths (core/model/fused_decode.h has its own fused LayerNorm), CPU.
#pragma once

#include "core/torch_compat.h"

namespace wb {

// Differentiable LayerNorm over the last dimension with the output rounded once to
// outDtype (fp16 or bf16). x fp32 on CUDA, weight and bias fp32 [cols]; x is made
// contiguous. Gradients: fp32 for x, weight and bias, deterministic. Throws InputError
// (naming the argument) when the kernel cannot take the inputs, RunError when built
// without the CUDA kernels.
torch::Tensor fusedLayerNorm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                             double eps, torch::ScalarType outDtype);

// ln(x) as the model's training forward wants it: fusedLayerNorm when `allowFused`, the
// kernels are built, x is fp32 on CUDA, autocast is on for CUDA with fp16/bf16, ln has a
// 1-D normalized shape with fp32 weight and bias, and the kernel takes the shape (last
// dimension a multiple of 128, at most 4096); otherwise ln->forward(x), unchanged.
// Under autocast LibTorch's layer_norm runs in fp32 and returns fp32, which the next
// linear casts to the autocast dtype; the fused output is that same fp32 value rounded
// once, equal up to the fp32 reduction order of the mean and variance (so at most one
// rounding of the 16-bit dtype apart), but returned in the 16-bit dtype, not fp32.
torch::Tensor layerNormForTraining(const torch::nn::LayerNorm& ln, const torch::Tensor& x, bool allowFused = true);

}  // namespace wb
