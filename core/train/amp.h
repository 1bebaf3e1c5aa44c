// Mixed precision for training: the precision choice (fp32, bf16 or fp16 autocast
// over fp32 master weights), the check that this device and LibTorch can do it, and a
// dynamic loss scaler for fp16 (as torch.amp.GradScaler: scale the loss, unscale the
// gradients, skip the step on inf/NaN and halve the scale, grow it after a run of
// good steps). Not here: the autocast switch itself (core/torch_compat.h).
#pragma once

#include <string>
#include <vector>

#include "core/torch_compat.h"

namespace wb {

enum class Precision { Fp32, Bf16, Fp16 };

Precision parsePrecision(const std::string& name, const std::string& where);
const char* toString(Precision precision);
// The autocast dtype (kFloat32 for Fp32).
torch::Dtype autocastDtype(Precision precision);
// InputError naming `where` when `precision` cannot run on `device` in this build:
// bf16/fp16 need a CUDA device and LibTorch >= 2.4 (CPU LibTorch 1.13 cannot).
void checkPrecisionSupported(Precision precision, const torch::Device& device, const std::string& where);

struct GradScalerOptions {
  double initScale = 65536.0, growthFactor = 2.0, backoffFactor = 0.5;
  int64_t growthInterval = 2000;
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions options = {});
  // loss * scale, for backward().
  torch::Tensor scale(const torch::Tensor& loss) const;
  // Divides every gradient by the scale in place; returns true when all are finite.
  // Synchronises with the device once (to read the inf flag).
  bool unscale(std::vector<torch::Tensor>& grads);
  // After the step (taken or skipped): back off on inf/NaN, grow after growthInterval
  // finite steps in a row.
  void update(bool finite);
  double currentScale() const { return scale_; }
  int64_t skippedSteps() const { return skipped_; }

 private:
  GradScalerOptions o_;
  double scale_;
  int64_t goodSteps_ = 0, skipped_ = 0;
};

}  // namespace wb
