// Calibration statistics and Wanda scores; see prune_wanda.h.
#include "core/techniques/prune_wanda.h"

#include "core/errors.h"
#include "core/train/batch_sampler.h"

namespace wb {
namespace {

// Adds nothing to the layer's output; accumulates Σ x_i² per input feature and passes
// the call on to whatever adapter was attached before it.
class NormRecorder : public Conv1DAdapter {
 public:
  NormRecorder(std::shared_ptr<Conv1DAdapter> previous, int64_t in)
      : previous_(std::move(previous)), sumSq_(torch::zeros({in}, torch::kDouble)) {}
  torch::Tensor forward(const torch::Tensor& x, bool training) override {
    sumSq_ += x.detach().reshape({-1, x.size(-1)}).to(torch::kCPU, torch::kDouble).pow(2).sum(0);
    if (previous_) return previous_->forward(x, training);
    return torch::zeros({}, x.options());
  }
  std::shared_ptr<Conv1DAdapter> previous() const { return previous_; }
  torch::Tensor norms() const { return sumSq_.sqrt().to(torch::kFloat32); }

 private:
  std::shared_ptr<Conv1DAdapter> previous_;
  torch::Tensor sumSq_;
};

}  // namespace

std::vector<torch::Tensor> calibrationBatches(const uint16_t* tokens, int64_t tokenCount, int64_t seqLen,
                                              int64_t batch, int64_t count, uint64_t seed) {
  BatchSampler sampler(tokens, tokenCount, seqLen, batch, seed, "calibration data");
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(sampler.next().first);
  return out;
}

std::map<std::string, torch::Tensor> inputNorms(Gpt2& model, const std::vector<std::string>& modules,
                                                const std::vector<torch::Tensor>& batches) {
  if (batches.empty()) throw InputError("wanda calibration", "no calibration batches", "ask for at least one");
  // Which Conv1Ds: those whose weights selectWeights() picks.
  std::map<std::string, std::shared_ptr<NormRecorder>> recorders;
  std::map<std::string, Conv1DImpl*> convs;
  const auto weights = selectWeights(model, modules);
  for (const auto& item : model->named_modules()) {
    auto* conv = item.value()->as<Conv1DImpl>();
    if (!conv) continue;
    const std::string weightName = item.key() + ".weight";
    for (const auto& [name, w] : weights)
      if (name == weightName) {
        auto rec = std::make_shared<NormRecorder>(conv->adapter, conv->weight.size(0));
        conv->adapter = rec;
        recorders[name] = rec;
        convs[name] = conv;
      }
  }
  const bool wasTraining = model->is_training();
  model->eval();
  const auto device = model->parameters().front().device();
  try {
    torch::NoGradGuard noGrad;
    for (const auto& ids : batches) (void)model->forward(ids.to(device));
  } catch (...) {
    for (auto& [name, conv] : convs) conv->adapter = recorders[name]->previous();
    throw;
  }
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, conv] : convs) {
    conv->adapter = recorders[name]->previous();
    out[name] = recorders[name]->norms();
  }
  if (wasTraining) model->train();
  return out;
}

WeightScores wandaScores(Gpt2& model, const std::vector<std::string>& modules,
                         const std::map<std::string, torch::Tensor>& norms) {
  torch::NoGradGuard noGrad;
  WeightScores scores;
  for (const auto& [name, w] : selectWeights(model, modules)) {
    auto it = norms.find(name);
    if (it == norms.end()) throw InputError(name, "no calibration statistics for this weight");
    if (it->second.numel() != w.size(0)) throw InputError(name, "calibration statistics have the wrong length");
    scores[name] = w.detach().abs().to(torch::kCPU, torch::kFloat32) * it->second.unsqueeze(1);
  }
  return scores;
}

}  // namespace wb
