// Precision choice and the fp16 loss scaler; see amp.h.
#include "core/train/amp.h"

#include "core/errors.h"

namespace wb {

Precision parsePrecision(const std::string& name, const std::string& where) {
  if (name == "fp32") return Precision::Fp32;
  if (name == "bf16") return Precision::Bf16;
  if (name == "fp16") return Precision::Fp16;
  throw InputError(where, "unknown precision \"" + name + "\"", "use fp32, bf16 or fp16");
}

const char* toString(Precision p) {
  switch (p) {
    case Precision::Fp32: return "fp32";
    case Precision::Bf16: return "bf16";
    case Precision::Fp16: return "fp16";
  }
  return "fp32";
}

torch::Dtype autocastDtype(Precision p) {
  switch (p) {
    case Precision::Bf16: return torch::kBFloat16;
    case Precision::Fp16: return torch::kFloat16;
    case Precision::Fp32: break;
  }
  return torch::kFloat32;
}

void checkPrecisionSupported(Precision p, const torch::Device& device, const std::string& where) {
  if (p == Precision::Fp32) return;
  if (!compat::kHasAutocast)
    throw InputError(where,
                     std::string(toString(p)) + " mixed precision needs LibTorch >= 2.4 with CUDA; this build has "
                     "LibTorch " + compat::torchVersion(),
                     "use \"precision\": \"fp32\" here, or run on the GPU machine's CUDA build");
  if (!device.is_cuda())
    throw InputError(where, std::string(toString(p)) + " mixed precision runs on CUDA devices only (device is " +
                                device.str() + ")",
                     "set device.type to cuda, or use \"precision\": \"fp32\"");
}

GradScaler::GradScaler(GradScalerOptions o) : o_(o), scale_(o.initScale) {
  if (!(o_.initScale > 0) || !(o_.growthFactor > 1) || !(o_.backoffFactor > 0 && o_.backoffFactor < 1) ||
      o_.growthInterval < 1)
    throw InputError("grad scaler", "needs init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1, "
                                    "growth_interval >= 1");
}

torch::Tensor GradScaler::scale(const torch::Tensor& loss) const { return loss * scale_; }

bool GradScaler::unscale(std::vector<torch::Tensor>& grads) {
  if (grads.empty()) return true;
  const auto opts = grads.front().options().dtype(torch::kFloat32);
  auto foundInf = torch::zeros({1}, opts);
  const auto invScale = torch::full({1}, 1.0 / scale_, opts);
  if (grads.front().is_cuda()) {
    // One fused kernel over the list: unscale and flag non-finite values.
    at::_amp_foreach_non_finite_check_and_unscale_(grads, foundInf, invScale);
  } else {
    for (auto& g : grads) {
      g.mul_(invScale);
      foundInf.add_(g.isfinite().logical_not().any().to(torch::kFloat32));
    }
  }
  return foundInf.item<float>() == 0.0f;
}

void GradScaler::update(bool finite) {
  if (!finite) {
    scale_ *= o_.backoffFactor;
    goodSteps_ = 0;
    ++skipped_;
    return;
  }
  if (++goodSteps_ >= o_.growthInterval) {
    scale_ *= o_.growthFactor;
    goodSteps_ = 0;
  }
}

}  // namespace wb
