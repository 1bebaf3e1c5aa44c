// GPT-2 forward pass and initialisation; see gpt2.h.
#include "core/model/gpt2.h"

#include <cmath>
#include <limits>

#include "core/errors.h"
#include "core/model/fused_layer_norm.h"
#include "core/model/vocab_padding.h"
#include "core/train/activation_checkpoint.h"

namespace wb {
namespace {

// One query against every slot of a static cache, masked to the visible ones. Shapes
// stay fixed from step to step, which is what a CUDA graph needs.
torch::Tensor staticCacheAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   const torch::Tensor& visible, double scale) {
#if WB_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, visible, 0.0, false, scale);
#else
  auto scores = torch::matmul(q, k.transpose(-1, -2)).to(torch::kFloat32) * scale;
  scores = scores.masked_fill(visible.logical_not(), -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(scores, -1).to(v.scalar_type()), v);
#endif
}

}  // namespace

Conv1DImpl::Conv1DImpl(int64_t in, int64_t out) {
  weight = register_parameter("weight", torch::empty({in, out}));
  bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor Conv1DImpl::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (kernel) {
    y = kernel->forward(x, bias);
  } else {
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(1);
    y = torch::addmm(bias, x.reshape({-1, x.size(-1)}), weight).view(sizes);
  }
  if (adapter) y = y + adapter->forward(x, is_training());
  return y;
}

Gpt2AttentionImpl::Gpt2AttentionImpl(const Gpt2Config& c, int64_t layerIndex)
    : nHead_(c.nHead), headDim_(c.headDim()), layer_(layerIndex) {
  c_attn = register_module("c_attn", Conv1D(c.nEmbd, 3 * c.nEmbd));
  c_proj = register_module("c_proj", Conv1D(c.nEmbd, c.nEmbd));
  scale_ = c.scaleAttnWeights ? 1.0 / std::sqrt(static_cast<double>(headDim_)) : 1.0;
  if (c.scaleAttnByInverseLayerIdx) scale_ /= static_cast<double>(layerIndex + 1);
  attnDrop_ = c.attnPdrop;
  residDrop_ = c.residPdrop;
}

torch::Tensor Gpt2AttentionImpl::forward(const torch::Tensor& x, KvCache* cache,
                                         AttentionBackend backend) {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t e = nHead_ * headDim_;  // n_embd unless heads were pruned
  auto qkv = c_attn->forward(x).split(e, -1);
  auto heads = [&](const torch::Tensor& m) {
    return m.view({b, t, nHead_, headDim_}).transpose(1, 2);
  };
  auto q = heads(qkv[0]);
  auto k = heads(qkv[1]);
  auto v = heads(qkv[2]);
  AttentionParams params;
  params.scale = scale_;
  params.dropout = attnDrop_;
  if (cache && cache->staticPosition()) {
    cache->keys[layer_].index_copy_(2, cache->position, k);
    cache->values[layer_].index_copy_(2, cache->position, v);
    auto y = staticCacheAttention(q, cache->keys[layer_], cache->values[layer_], cache->visible, scale_);
    return c_proj->forward(y.transpose(1, 2).reshape({b, t, e}));
  }
  if (cache) {
    const int64_t past = cache->length;
    if (past + t > cache->capacity)
      throw RunError("kv cache", "cache holds " + std::to_string(cache->capacity) +
                                     " positions; " + std::to_string(past + t) + " needed");
    cache->keys[layer_].narrow(2, past, t).copy_(k);
    cache->values[layer_].narrow(2, past, t).copy_(v);
    k = cache->keys[layer_].narrow(2, 0, past + t);
    v = cache->values[layer_].narrow(2, 0, past + t);
    params.pastLength = past;
  }
  auto y = attention(q, k, v, params, backend, is_training());
  y = y.transpose(1, 2).contiguous().view({b, t, e});
  y = c_proj->forward(y);
  if (is_training() && residDrop_ > 0) y = torch::dropout(y, residDrop_, true);
  return y;
}

void Gpt2AttentionImpl::keepHeads(const std::vector<int64_t>& keep) {
  if (keep.empty()) throw InputError("gpt2 attention", "a layer must keep at least one head");
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i] < 0 || keep[i] >= nHead_ || (i > 0 && keep[i] <= keep[i - 1]))
      throw InputError("gpt2 attention", "head indices must be ascending and below " +
                                             std::to_string(nHead_));
  torch::NoGradGuard noGrad;
  const int64_t inner = nHead_ * headDim_;
  std::vector<int64_t> cols;  // positions inside one of q, k, v
  for (int64_t h : keep)
    for (int64_t d = 0; d < headDim_; ++d) cols.push_back(h * headDim_ + d);
  auto idx = torch::tensor(cols, torch::TensorOptions().dtype(torch::kLong)).to(c_attn->weight.device());
  auto qkvIdx = torch::cat({idx, idx + inner, idx + 2 * inner});
  auto replace = [](torch::Tensor& param, torch::Tensor value) {
    param.set_data(value.contiguous());
  };
  replace(c_attn->weight, c_attn->weight.index_select(1, qkvIdx));
  replace(c_attn->bias, c_attn->bias.index_select(0, qkvIdx));
  replace(c_proj->weight, c_proj->weight.index_select(0, idx));
  nHead_ = static_cast<int64_t>(keep.size());
}

Gpt2MlpImpl::Gpt2MlpImpl(const Gpt2Config& c) : activation_(c.activation), drop_(c.residPdrop) {
  c_fc = register_module("c_fc", Conv1D(c.nEmbd, c.innerDim()));
  c_proj = register_module("c_proj", Conv1D(c.innerDim(), c.nEmbd));
}

torch::Tensor Gpt2MlpImpl::forward(const torch::Tensor& x) {
  auto h = c_fc->forward(x);
  if (activation_ == "gelu_new" && h.scalar_type() != torch::kFloat32) {
    // In 16-bit (autocast or half weights) the fused tanh-GELU computes the same
    // function; the two differ by less than the format's rounding, and the fused
    // kernel reads and writes the activations once instead of seven times.
    h = torch::gelu(h, "tanh");
  } else if (activation_ == "gelu_new") {
    // transformers' NewGELUActivation, spelled out so results match it bit for bit
    // rather than LibTorch's fused tanh-GELU.
    const double k = std::sqrt(2.0 / M_PI);
    h = 0.5 * h * (1.0 + torch::tanh(k * (h + 0.044715 * torch::pow(h, 3.0))));
  } else if (activation_ == "gelu_pytorch_tanh") {
    h = torch::gelu(h, "tanh");
  } else if (activation_ == "gelu") {
    h = torch::gelu(h);
  } else {
    h = torch::relu(h);
  }
  h = c_proj->forward(h);
  if (is_training() && drop_ > 0) h = torch::dropout(h, drop_, true);
  return h;
}

void Gpt2MlpImpl::keepNeurons(const std::vector<int64_t>& keep) {
  const int64_t inner = innerCount();
  if (keep.empty()) throw InputError("gpt2 mlp", "a layer must keep at least one neuron");
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i] < 0 || keep[i] >= inner || (i > 0 && keep[i] <= keep[i - 1]))
      throw InputError("gpt2 mlp", "neuron indices must be ascending and below " + std::to_string(inner));
  torch::NoGradGuard noGrad;
  auto idx = torch::tensor(keep, torch::TensorOptions().dtype(torch::kLong)).to(c_fc->weight.device());
  c_fc->weight.set_data(c_fc->weight.index_select(1, idx).contiguous());
  c_fc->bias.set_data(c_fc->bias.index_select(0, idx).contiguous());
  c_proj->weight.set_data(c_proj->weight.index_select(0, idx).contiguous());
}

Gpt2BlockImpl::Gpt2BlockImpl(const Gpt2Config& c, int64_t layerIndex) {
  auto ln = [&] {
    return torch::nn::LayerNorm(
        torch::nn::LayerNormOptions({c.nEmbd}).eps(c.layerNormEpsilon).elementwise_affine(true));
  };
  ln_1 = register_module("ln_1", ln());
  attn = register_module("attn", Gpt2Attention(c, layerIndex));
  ln_2 = register_module("ln_2", ln());
  mlp = register_module("mlp", Gpt2Mlp(c));
}

torch::Tensor Gpt2BlockImpl::forward(const torch::Tensor& x, KvCache* cache,
                                     AttentionBackend backend) {
  return forwardMlp(forwardAttention(x, cache, backend));
}

torch::Tensor Gpt2BlockImpl::forwardAttention(const torch::Tensor& x, KvCache* cache,
                                              AttentionBackend backend) {
  return x + attn->forward(layerNormForTraining(ln_1, x, fusedLayerNorm_), cache, backend);
}

torch::Tensor Gpt2BlockImpl::forwardMlp(const torch::Tensor& h) {
  return h + mlp->forward(layerNormForTraining(ln_2, h, fusedLayerNorm_));
}

Gpt2TransformerImpl::Gpt2TransformerImpl(const Gpt2Config& c) {
  wte = register_module("wte", torch::nn::Embedding(c.vocabSize, c.nEmbd));
  wpe = register_module("wpe", torch::nn::Embedding(c.nPositions, c.nEmbd));
  h = register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.nLayer; ++i) h->push_back(Gpt2Block(c, i));
  ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.nEmbd})
                                                          .eps(c.layerNormEpsilon)
                                                          .elementwise_affine(true)));
}

Gpt2Impl::Gpt2Impl(Gpt2Config config) : config_(std::move(config)) {
  config_.validate("gpt2 config");
  transformer = register_module("transformer", Gpt2Transformer(config_));
  if (!config_.tieWordEmbeddings) {
    // Registered under the name HF uses ("lm_head.weight") through a child module.
    auto head = std::make_shared<torch::nn::Module>();
    lmHeadWeight = head->register_parameter("weight", torch::empty({config_.vocabSize, config_.nEmbd}));
    register_module("lm_head", head);
  }
  initWeights();
}

void Gpt2Impl::initWeights() {
  torch::NoGradGuard noGrad;
  const double std0 = config_.initializerRange;
  const double projStd = std0 / std::sqrt(2.0 * static_cast<double>(config_.nLayer));
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    if (name.find(".ln_") != std::string::npos || name.find("ln_f") != std::string::npos) {
      if (name.ends_with("weight")) p.fill_(1.0); else p.zero_();
    } else if (name.ends_with("bias")) {
      p.zero_();
    } else if (name.ends_with("c_proj.weight")) {
      p.normal_(0.0, projStd);
    } else {
      p.normal_(0.0, std0);
    }
  }
}

torch::Tensor Gpt2Impl::hidden(const torch::Tensor& ids, KvCache* cache) {
  const int64_t t = ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  if (past + t > config_.nPositions)
    throw RunError("gpt2", "sequence of " + std::to_string(past + t) +
                               " tokens exceeds the model's n_positions = " +
                               std::to_string(config_.nPositions));
  torch::Tensor pos;
  if (cache && cache->staticPosition()) {
    if (t != 1) throw RunError("gpt2", "a static-position KV cache takes one token per forward, got " + std::to_string(t));
    pos = cache->position;
    cache->visible = (cache->slots <= cache->position).view({1, 1, 1, -1});
  } else {
    pos = torch::arange(past, past + t, ids.options().dtype(torch::kLong));
  }
  auto x = transformer->wte->forward(ids) + transformer->wpe->forward(pos).unsqueeze(0);
  if (is_training() && config_.embdPdrop > 0) x = torch::dropout(x, config_.embdPdrop, true);
  const bool recompute = checkpointing_ && !cache && is_training() && torch::GradMode::is_enabled() &&
                         x.requires_grad();
  for (const auto& item : *transformer->h) {
    auto block = item->as<Gpt2Block>();
    if (recompute) {
      auto keep = std::dynamic_pointer_cast<Gpt2BlockImpl>(item);  // alive until backward
      const auto backend = backend_;
      x = checkpointed([keep, backend](const torch::Tensor& in) { return keep->forward(in, nullptr, backend); }, x);
    } else {
      x = block->forward(x, cache, backend_);
    }
  }
  if (cache) {
    cache->length += t;
    if (cache->staticPosition()) cache->position.add_(t);
  }
  return layerNormForTraining(transformer->ln_f, x, fusedLayerNorm_);
}

torch::Tensor Gpt2Impl::logitsFromHidden(const torch::Tensor& h) {
  const auto& w = config_.tieWordEmbeddings ? transformer->wte->weight : lmHeadWeight;
  // On CUDA, for many rows (training, evaluation, long prefills), the padded
  // vocabulary (vocab_padding.h) for the forward GEMM and both backward ones, and the
  // view of the real columns; decode steps (a few rows) skip the weight copy it costs.
  constexpr int64_t kPadFromRows = 256;
  const int64_t vocab = w.size(0);
  const int64_t rows = h.size(-1) > 0 ? h.numel() / h.size(-1) : 0;
  if (!h.is_cuda() || paddedVocab(vocab) == vocab || rows < kPadFromRows) return torch::matmul(h, w.t());
  return torch::matmul(h, padVocabRows(w).t()).narrow(-1, 0, vocab);
}

torch::Tensor Gpt2Impl::forward(const torch::Tensor& ids, KvCache* cache) {
  return logitsFromHidden(hidden(ids, cache));
}

void Gpt2Impl::setFusedLayerNorm(bool on) {
  fusedLayerNorm_ = on;
  for (const auto& block : *transformer->h) block->as<Gpt2Block>()->setFusedLayerNorm(on);
}

void Gpt2Impl::setInnerDim(int64_t n) {
  for (const auto& block : *transformer->h)
    if (block->as<Gpt2Block>()->mlp->innerCount() != n)
      throw InputError("gpt2", "n_inner " + std::to_string(n) + " does not match every layer's MLP");
  config_.nInner = n;
}

KvCache Gpt2Impl::makeCache(int64_t batch, int64_t capacity,
                            const torch::TensorOptions& options) const {
  KvCache c;
  c.capacity = std::min(capacity, config_.nPositions);
  for (int64_t i = 0; i < config_.nLayer; ++i) {
    const auto& attn = transformer->h->ptr(static_cast<size_t>(i))->as<Gpt2Block>()->attn;  // heads may be pruned
    const int64_t heads = attn->headCount();
    c.keys.push_back(torch::zeros({batch, heads, c.capacity, attn->headDim()}, options));
    c.values.push_back(torch::zeros({batch, heads, c.capacity, attn->headDim()}, options));
  }
  return c;
}

void Gpt2Impl::useStaticPosition(KvCache& cache) const {
  if (cache.keys.empty()) throw InputError("kv cache", "make the cache with makeCache() first");
  const auto opts = cache.keys.front().options().dtype(torch::kLong);
  cache.position = torch::full({1}, cache.length, opts);
  cache.slots = torch::arange(cache.capacity, opts);
}

int64_t Gpt2Impl::parameterCount() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

int64_t Gpt2Impl::parameterBytes() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel() * static_cast<int64_t>(p.element_size());
  return n;
}

}  // namespace wb
