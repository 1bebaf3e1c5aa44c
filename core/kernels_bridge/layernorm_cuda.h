// Tensor-facing wrapper of kernels/layernorm: LayerNorm of fp32 activations straight to
// a 16-bit output, and its backward from the 16-bit output gradient to fp32 dx, dweight,
// dbias. Checks dtype, device, layout and shape, launches on the current CUDA stream.
// Without the CUDA kernels every call throws. The autograd Function and the dispatch
// the model uses are in core/model/fused_layer_norm.h.
#pragma once

#include "core/torch_compat.h"

namespace wb {

bool layerNormKernelBuilt();

// Whether the kernel takes x normalised over its last dimension with this weight: x
// fp32 on CUDA, contiguous and 16-byte aligned, last dimension cols a multiple of 128
// and at most 4096; weight fp32 [cols] on x's device, contiguous and aligned (call it
// with the bias too for the forward).
bool layerNormKernelFits(const torch::Tensor& x, const torch::Tensor& weight);

struct LayerNormCudaForward {
  torch::Tensor y;           // x's shape, outDtype
  torch::Tensor mean, rstd;  // fp32 [rows], rows = x.numel() / cols
};

// y = (x - mean) * rstd * weight + bias rounded once to outDtype (fp16 or bf16), with
// rstd = 1 / sqrt(biased variance + eps).
LayerNormCudaForward layerNormForwardCuda(const torch::Tensor& x, const torch::Tensor& weight,
                                          const torch::Tensor& bias, double eps, torch::ScalarType outDtype);

struct LayerNormCudaBackward {
  torch::Tensor dx;              // fp32, x's shape
  torch::Tensor dweight, dbias;  // fp32 [cols]
};

// dy: fp16/bf16 with x's shape; mean and rstd from layerNormForwardCuda. Deterministic.
LayerNormCudaBackward layerNormBackwardCuda(const torch::Tensor& dy, const torch::Tensor& x,
                                            const torch::Tensor& mean, const torch::Tensor& rstd,
                                            const torch::Tensor& weight);

}  // namespace wb
