// AdamW update; see adamw.h. Same arithmetic as torch.optim.AdamW (non-fused,
// non-foreach): decay, moments, bias-corrected step.
#include "core/train/adamw.h"

#include <cmath>
#include <map>
#include <tuple>

#include "core/errors.h"

namespace wb {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions o)
    : params_(std::move(params)), o_(o) {
  if (o_.fused && !compat::kHasFusedAdamW)
    throw InputError("fused_optimizer", "fused AdamW needs LibTorch >= 2.4 (this build has " +
                                            compat::torchVersion() + ")",
                     "set \"fused_optimizer\": false");
}

void AdamW::initState() {
  for (auto& [name, p] : params_) {
    expAvg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    expAvgSq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
  }
}

void AdamW::fusedStep(double lr) {
  // The kernel wants one device and dtype per call, and decay applies to >= 2-D
  // tensors only: group by (device, dtype, decays). It reads a step count per tensor
  // (bias correction); every tensor of a device shares one count, set from step_ so
  // it always agrees with the non-fused path and with checkpoints.
  struct Group {
    std::vector<torch::Tensor> p, g, m, v, s;
  };
  std::map<std::tuple<std::string, int, bool>, Group> groups;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].second;
    if (!p.grad().defined()) continue;
    const std::string dev = p.device().str();
    auto count = stepTensors_.end();
    for (auto it = stepTensors_.begin(); it != stepTensors_.end(); ++it)
      if (it->device() == p.device()) count = it;
    if (count == stepTensors_.end()) {
      stepTensors_.push_back(torch::zeros({}, p.options().dtype(torch::kFloat32)));
      count = stepTensors_.end() - 1;
    }
    auto& gr = groups[{dev, static_cast<int>(p.scalar_type()), p.dim() >= 2}];
    gr.p.push_back(p);
    gr.g.push_back(p.grad());
    gr.m.push_back(expAvg_[i]);
    gr.v.push_back(expAvgSq_[i]);
    gr.s.push_back(*count);
  }
  for (auto& c : stepTensors_) c.fill_(static_cast<double>(step_));
  for (auto& [key, gr] : groups)
    compat::fusedAdamW(gr.p, gr.g, gr.m, gr.v, gr.s, lr, o_.beta1, o_.beta2,
                       std::get<2>(key) ? o_.weightDecay : 0.0, o_.eps);
}

void AdamW::zeroGrad(bool setToNone) {
  for (auto& [name, p] : params_) {
    if (!p.grad().defined()) continue;
    if (setToNone) p.mutable_grad().reset();
    else p.mutable_grad().zero_();
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard noGrad;
  if (expAvg_.empty()) initState();
  ++step_;
  if (o_.fused) {
    fusedStep(lr);
    return;
  }
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].second;
    if (!p.grad().defined()) continue;
    const auto& g = p.grad();
    if (p.dim() >= 2 && o_.weightDecay > 0) p.mul_(1.0 - lr * o_.weightDecay);
    expAvg_[i].mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
    expAvgSq_[i].mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
    const auto denom = (expAvgSq_[i].sqrt() / std::sqrt(bc2)).add_(o_.eps);
    p.addcdiv_(expAvg_[i], denom, -lr / bc1);
  }
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::stateTensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < expAvg_.size(); ++i) {
    out.emplace_back("exp_avg." + params_[i].first, expAvg_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].first, expAvgSq_[i]);
  }
  return out;
}

void AdamW::loadState(const std::map<std::string, torch::Tensor>& tensors, int64_t steps) {
  expAvg_.clear();
  expAvgSq_.clear();
  stepTensors_.clear();  // rebuilt from `steps` at the next fused step
  step_ = steps;
  if (steps == 0) return;
  for (auto& [name, p] : params_) {
    auto a = tensors.find("exp_avg." + name);
    auto b = tensors.find("exp_avg_sq." + name);
    if (a == tensors.end() || b == tensors.end())
      throw InputError("optimizer.safetensors", "no optimizer state for parameter " + name);
    if (a->second.sizes() != p.sizes() || b->second.sizes() != p.sizes())
      throw InputError("optimizer.safetensors", "optimizer state of " + name + " has the wrong shape");
    expAvg_.push_back(a->second.to(p.device(), p.scalar_type()).clone());
    expAvgSq_.push_back(b->second.to(p.device(), p.scalar_type()).clone());
  }
}

int64_t AdamW::stateBytes() const {
  int64_t n = 0;
  for (const auto& [name, p] : params_) n += 2 * p.numel() * static_cast<int64_t>(p.element_size());
  return n;
}

}  // namespace wb
