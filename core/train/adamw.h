// AdamW (decoupled weight decay, as torch.optim.AdamW) with weight decay only on
// tensors of rank >= 2. Written here rather than using torch::optim so its state is
// plain named tensors: checkpoints are safetensors and resume is bit-exact. With
// `fused`, the update runs as LibTorch's fused kernel (torch.optim.AdamW(fused=True),
// LibTorch >= 2.4) over the same state tensors, so checkpoints are interchangeable.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/torch_compat.h"

namespace wb {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weightDecay = 0.1;
  bool fused = false;  // InputError at construction where LibTorch has no fused AdamW
};

class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options);
  void step(double lr);
  bool fused() const { return o_.fused; }
  // setToNone drops the gradients (as PyTorch's default zero_grad): the next backward
  // then stores each gradient instead of adding it to zeros, which saves a fill and an
  // add per parameter (~300 launches per GPT-2 step). Otherwise they are zeroed in place.
  void zeroGrad(bool setToNone = false);
  int64_t steps() const { return step_; }
  // "exp_avg.<param>" and "exp_avg_sq.<param>" tensors (created lazily at the first step).
  std::vector<std::pair<std::string, torch::Tensor>> stateTensors() const;
  void loadState(const std::map<std::string, torch::Tensor>& tensors, int64_t steps);
  int64_t stateBytes() const;
  const std::vector<std::pair<std::string, torch::Tensor>>& params() const { return params_; }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  void initState();
  void fusedStep(double lr);
  std::vector<torch::Tensor> expAvg_, expAvgSq_;
  std::vector<torch::Tensor> stepTensors_;  // fused only: the step count, one float per device
  AdamWOptions o_;
  int64_t step_ = 0;
};

}  // namespace wb
