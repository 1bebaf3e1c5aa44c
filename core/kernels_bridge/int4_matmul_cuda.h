// Tensor-facing wrapper of kernels/int4_matmul: y = x W^T + b with W in the packed int4
// layout of core/techniques/quantize.h (qweight uint8 [N, K/2], fp16 scales
// [N, K/group], optional uint8 zeros). Checks dtype, device, contiguity and shape,
// launches on the current CUDA stream. Without the CUDA kernels every call throws.
// Not here: the CPU reference (dequantMatmul in quantize.h), int8.
#pragma once

#include "core/torch_compat.h"

namespace wb {

bool int4KernelBuilt();

enum class Int4Kernel { Auto, Gemv, Gemm };

// x [..., K] fp16/bf16 on CUDA; packed, scales, zeros (undefined when symmetric) and
// bias (optional, any float dtype) on the same device. Returns [..., N] in x's dtype.
torch::Tensor int4MatmulCuda(const torch::Tensor& x, const torch::Tensor& packed, const torch::Tensor& scales,
                             const torch::Tensor& zeros, const torch::Tensor& bias, int64_t groupSize,
                             Int4Kernel kernel = Int4Kernel::Auto);

}  // namespace wb
