// One pipeline stage's forward and backward; see pipeline_stage.h.
#include "core/parallel/pipeline_stage.h"

#include <string_view>

#include "core/errors.h"
#include "core/model/fused_layer_norm.h"

namespace wb {

PipelineStage::PipelineStage(Gpt2 model, const StagePlan& plan, int index, int stages,
                             torch::Device device, bool checkpoint)
    : model_(std::move(model)),
      plan_(plan),
      index_(index),
      device_(device),
      checkpoint_(checkpoint) {
  auto& tr = model_->transformer;
  for (int64_t l = plan_.firstLayer(); l < plan_.endLayer(); ++l)
    pieces_.push_back({Gpt2Block(tr->h->ptr<Gpt2BlockImpl>(static_cast<size_t>(l))), plan_.hasAttention(l),
                       plan_.hasMlp(l)});
  placeOnDevice();
  const bool tiedModel = model_->config().tieWordEmbeddings;
  if (last()) {
    if (!tiedModel) {
      head_ = model_->lmHeadWeight;
    } else if (first()) {
      head_ = tr->wte->weight;  // one stage: nothing to keep in sync
    } else {
      torch::NoGradGuard noGrad;
      head_ = tr->wte->weight.detach().to(device_).clone();
      head_.set_requires_grad(tr->wte->weight.requires_grad());
    }
  }
  if (tiedModel && stages > 1)
    tied_ = first() ? tr->wte->weight : (last() ? head_ : torch::Tensor());

  auto wanted = [&](const std::string& name) {
    if (first() && (name.starts_with("transformer.wte.") || name.starts_with("transformer.wpe.")))
      return true;
    if (last() && (name.starts_with("transformer.ln_f.") || name.starts_with("lm_head.")))
      return true;
    for (int64_t l = plan_.firstLayer(); l < plan_.endLayer(); ++l) {
      const std::string block = "transformer.h." + std::to_string(l) + ".";
      if (!name.starts_with(block)) continue;
      const std::string_view rest = std::string_view(name).substr(block.size());
      const bool attentionHalf = rest.starts_with("ln_1.") || rest.starts_with("attn.");
      return attentionHalf ? plan_.hasAttention(l) : plan_.hasMlp(l);
    }
    return false;
  };
  for (auto& item : model_->named_parameters())
    if (item.value().requires_grad() && wanted(item.key()))
      params_.emplace_back(item.key(), item.value());
  if (ownsTiedCopy() && head_.requires_grad()) params_.emplace_back(kTiedCopy, head_);
}

void PipelineStage::refreshTiedCopy() {
  if (!ownsTiedCopy()) return;
  torch::NoGradGuard noGrad;
  head_.copy_(model_->transformer->wte->weight);
}

void PipelineStage::placeOnDevice() {
  auto& tr = model_->transformer;
  // A split block's halves live on two stages (in one process: two devices), so only
  // this stage's half moves.
  for (auto& p : pieces_) {
    if (p.attention && p.mlp) {
      p.block->to(device_);
    } else if (p.attention) {
      p.block->ln_1->to(device_);
      p.block->attn->to(device_);
    } else {
      p.block->ln_2->to(device_);
      p.block->mlp->to(device_);
    }
  }
  if (first()) {
    tr->wte->to(device_);
    tr->wpe->to(device_);
  }
  if (last()) {
    tr->ln_f->to(device_);
    if (!model_->config().tieWordEmbeddings)
      model_->lmHeadWeight.set_data(model_->lmHeadWeight.data().to(device_));
  }
}

torch::Tensor PipelineStage::run(const torch::Tensor& input, const torch::Tensor& targets,
                                 double lossDivisor) {
  torch::Tensor x = input;
  if (first()) {
    // Same arithmetic as Gpt2Impl::hidden, so one stage reproduces the model exactly.
    auto& tr = model_->transformer;
    const int64_t t = input.size(1);
    if (t > model_->config().nPositions)
      throw RunError("pipeline", "sequence of " + std::to_string(t) +
                                     " tokens exceeds n_positions " +
                                     std::to_string(model_->config().nPositions));
    auto pos = torch::arange(0, t, input.options().dtype(torch::kLong));
    x = tr->wte->forward(input) + tr->wpe->forward(pos).unsqueeze(0);
    if (model_->is_training() && model_->config().embdPdrop > 0)
      x = torch::dropout(x, model_->config().embdPdrop, true);
  }
  const AttentionBackend backend = model_->attentionBackend();
  for (auto& p : pieces_) {
    if (p.attention) x = p.block->forwardAttention(x, nullptr, backend);
    if (p.mlp) x = p.block->forwardMlp(x);
  }
  if (!last()) return x;
  const auto h = layerNormForTraining(model_->transformer->ln_f, x, model_->fusedLayerNormEnabled());
  const auto logits = torch::matmul(h, head_.t());
  const int64_t vocab = logits.size(-1);
  // As Trainer: mean cross-entropy in fp32 over the micro-batch's tokens.
  return torch::nn::functional::cross_entropy(logits.reshape({-1, vocab}).to(torch::kFloat32),
                                              targets.reshape({-1})) /
         lossDivisor;
}

torch::Tensor PipelineStage::forward(int64_t mb, const torch::Tensor& inputIn,
                                     const torch::Tensor& targets, double lossDivisor) {
  if (saved_.count(mb))
    throw RunError("pipeline", "stage " + std::to_string(index_) + " got micro-batch " +
                                   std::to_string(mb) + " twice");
  Saved s;
  s.targets = targets;
  s.lossDivisor = lossDivisor;
  // Later stages start their graph at the received activations, a leaf whose gradient
  // is what goes back to the previous stage.
  s.input = first() ? inputIn : inputIn.detach().requires_grad_(true);
  torch::Tensor out;
  if (checkpoint_) {
    torch::NoGradGuard noGrad;
    out = run(s.input, targets, lossDivisor);
  } else {
    out = run(s.input, targets, lossDivisor);
    s.output = out;
  }
  saved_.emplace(mb, std::move(s));
  peakLive_ = std::max(peakLive_, saved_.size());
  return out.detach();
}

torch::Tensor PipelineStage::backward(int64_t mb, const torch::Tensor& gradOutput) {
  auto it = saved_.find(mb);
  if (it == saved_.end())
    throw RunError("pipeline", "stage " + std::to_string(index_) +
                                   " has no forward state for micro-batch " + std::to_string(mb));
  Saved s = std::move(it->second);
  saved_.erase(it);
  torch::Tensor out = s.output;
  if (!out.defined()) out = run(s.input, s.targets, s.lossDivisor);  // checkpointed: recompute
  if (last()) {
    out.backward();
  } else {
    if (!gradOutput.defined())
      throw RunError("pipeline", "stage " + std::to_string(index_) +
                                     " needs the gradient of micro-batch " + std::to_string(mb));
    out.backward(gradOutput);
  }
  if (first()) return {};
  return s.input.grad();
}

TensorMeta PipelineStage::hiddenMeta(int64_t rows, int64_t seqLen) const {
  const auto& w = model_->transformer->ln_f->weight;
  return {{rows, seqLen, model_->config().nEmbd}, w.scalar_type(), device_};
}

}  // namespace wb
