// Dequantizing Conv1D kernels; see quantized_linear.h.
#include "core/techniques/quantized_linear.h"

#include "core/techniques/prune.h"

namespace wb {

torch::Tensor DequantConv1D::forward(const torch::Tensor& x, const torch::Tensor& bias) {
  return dequantMatmul(x, weight_, bias).to(x.scalar_type());
}

std::vector<std::string> attachQuantizedKernels(Gpt2& model, const QuantSpec& spec,
                                                const std::vector<std::string>& modules, bool releaseDense) {
  std::vector<std::string> skipped;
  const auto quantized = quantizeModel(model, spec, modules, false, &skipped);
  std::map<std::string, const QuantizedWeight*> byName;
  for (const auto& q : quantized) byName[q.name] = &q;
  for (const auto& item : model->named_modules()) {
    auto* conv = item.value()->as<Conv1DImpl>();
    if (!conv) continue;
    auto it = byName.find(item.key() + ".weight");
    if (it == byName.end()) continue;
    QuantizedWeight q = *it->second;
    // Kernels run on the model's device: keep the packed tensors there.
    const auto device = conv->weight.device();
    q.packed = q.packed.to(device);
    q.scales = q.scales.to(device);
    if (q.zeros.defined()) q.zeros = q.zeros.to(device);
    conv->kernel = std::make_shared<DequantConv1D>(std::move(q));
    if (releaseDense) {
      torch::NoGradGuard noGrad;
      conv->weight.set_data(torch::empty({0}, conv->weight.options()));
    }
  }
  return skipped;
}

}  // namespace wb
