// Runs Gpt2's Conv1D layers from quantized weights: a Conv1DKernel that computes
// x W + b through dequantMatmul (the CPU reference of the int8 / int4 kernels), so a
// benchmark times what a weight-only quantized model really costs on this build —
// including the dequantization — instead of a dense matmul on dequantized values.
// Not here: fused CUDA kernels (GPU issue); the LM head stays dense.
#pragma once

#include <string>
#include <vector>

#include "core/techniques/quantize.h"

namespace wb {

class DequantConv1D : public Conv1DKernel {
 public:
  explicit DequantConv1D(QuantizedWeight weight) : weight_(std::move(weight)) {}
  // In fp32 whatever x's dtype (as the reference does), returned in x's dtype.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias) override;
  const QuantizedWeight& weight() const { return weight_; }

 private:
  QuantizedWeight weight_;
};

// Quantizes the selected Conv1D weights (prunableModules() suffixes) and attaches a
// DequantConv1D to each; weights the group size does not divide stay dense and are
// returned. `releaseDense`: the dense weight tensors are replaced by empty ones so the
// process really holds only the packed form (the model can then no longer be copied or
// saved; benchmark variants only).
std::vector<std::string> attachQuantizedKernels(Gpt2& model, const QuantSpec& spec,
                                                const std::vector<std::string>& modules, bool releaseDense);

}  // namespace wb
