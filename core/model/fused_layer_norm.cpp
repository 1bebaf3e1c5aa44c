// The fused LayerNorm autograd Function and the model's dispatch; see fused_layer_norm.h.
#include "core/model/fused_layer_norm.h"

#include <string>

#include "core/errors.h"
#include "core/kernels_bridge/layernorm_cuda.h"

namespace wb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class FusedLayerNormFunction : public torch::autograd::Function<FusedLayerNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, double eps, int64_t outDtype) {
    auto f = layerNormForwardCuda(x, weight, bias, eps, static_cast<c10::ScalarType>(outDtype));
    // mean and rstd are neither inputs nor outputs: saved so backward need not
    // recompute the row statistics.
    ctx->save_for_backward({x, weight, f.mean, f.rstd});
    ctx->saved_data["outDtype"] = outDtype;
    return f.y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOutputs) {
    const auto& dyIn = gradOutputs[0];
    if (!dyIn.defined()) return {{}, {}, {}, {}, {}};
    const auto saved = ctx->get_saved_variables();
    const auto outDtype = static_cast<c10::ScalarType>(ctx->saved_data["outDtype"].toInt());
    // The gradient of a 16-bit output arrives in that dtype; a strided one is copied.
    const auto dy = dyIn.to(outDtype).contiguous();
    auto g = layerNormBackwardCuda(dy, saved[0], saved[2], saved[3], saved[1]);
    // One entry per forward argument; eps and the dtype get none.
    return {g.dx, g.dweight, g.dbias, {}, {}};
  }
};

}  // namespace

torch::Tensor fusedLayerNorm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                             double eps, torch::ScalarType outDtype) {
  if (!x.defined()) throw InputError("fused layer norm: x", "is undefined");
  return FusedLayerNormFunction::apply(x.contiguous(), weight, bias, eps, static_cast<int64_t>(outDtype));
}

torch::Tensor layerNormForTraining(const torch::nn::LayerNorm& ln, const torch::Tensor& x, bool allowFused) {
  if (allowFused && layerNormKernelBuilt() && x.defined() && x.is_cuda() && x.scalar_type() == torch::kFloat32) {
    const auto [amp, ampDtype] = compat::autocastState(x.device().type());
    const auto& o = ln->options;
    if (amp && (ampDtype == torch::kBFloat16 || ampDtype == torch::kHalf) && o.normalized_shape().size() == 1 &&
        o.elementwise_affine()) {
      const auto xc = x.contiguous();
      if (layerNormKernelFits(xc, ln->weight) && layerNormKernelFits(xc, ln->bias))
        return fusedLayerNorm(xc, ln->weight, ln->bias, o.eps(), ampDtype);
    }
  }
  return ln.ptr()->forward(x);  // ptr(): the holder is const, the module is not
}

}  // namespace wb
