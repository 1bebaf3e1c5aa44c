// AdamW (decoupled weight decay, as torch.optim.AdamW) with weight decay only on
// tensors of rank >= 2. Written here rather than using torch::optim so its state is
// plain named tensors: checkpoints are safetensors and resume is bit-exact.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/torch_compat.h"

namespace wb {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weightDecay = 0.1;
};

class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options);
  void step(double lr);
  void zeroGrad();
  int64_t steps() const { return step_; }
  // "exp_avg.<param>" and "exp_avg_sq.<param>" tensors (created lazily at the first step).
  std::vector<std::pair<std::string, torch::Tensor>> stateTensors() const;
  void loadState(const std::map<std::string, torch::Tensor>& tensors, int64_t steps);
  int64_t stateBytes() const;
  const std::vector<std::pair<std::string, torch::Tensor>>& params() const { return params_; }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<torch::Tensor> expAvg_, expAvgSq_;
  AdamWOptions o_;
  int64_t step_ = 0;
};

}  // namespace wb
