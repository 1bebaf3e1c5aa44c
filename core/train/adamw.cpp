// AdamW update; see adamw.h. Same arithmetic as torch.optim.AdamW (non-fused,
// non-foreach): decay, moments, bias-corrected step.
#include "core/train/adamw.h"

#include <cmath>

#include "core/errors.h"

namespace wb {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions o)
    : params_(std::move(params)), o_(o) {}

void AdamW::zeroGrad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

void AdamW::step(double lr) {
  torch::NoGradGuard noGrad;
  if (expAvg_.empty()) {
    for (auto& [name, p] : params_) {
      expAvg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      expAvgSq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    }
  }
  ++step_;
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
