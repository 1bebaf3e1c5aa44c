// GPT-2 as a LibTorch module whose named_parameters() are exactly the state-dict keys
// of Hugging Face's GPT2LMHeadModel (transformer.h.0.attn.c_attn.weight, ...), with
// Conv1D weights stored [in, out] as HF stores them, and the LM head tied to wte.
// Not here: loading files (core/io/hf_checkpoint.h), sampling (core/model/generate.h).
#pragma once

#include <memory>
#include <vector>

#include "core/model/attention.h"
#include "core/model/gpt2_config.h"
#include "core/torch_compat.h"

namespace wb {

// An additive side path on a Conv1D (LoRA: core/techniques/lora.h). Deliberately not a
// registered submodule, so named_parameters() keep HF's keys and checkpoints stay
// plain GPT-2; whoever attaches an adapter owns and trains its parameters.
class Conv1DAdapter {
 public:
  virtual ~Conv1DAdapter() = default;
  // x [..., in] -> [..., out], added to x W + b.
  virtual torch::Tensor forward(const torch::Tensor& x, bool training) = 0;
};

// Computes x W + b from another representation of W (weight-only quantization:
// core/techniques/quantized_linear.h). While one is attached, Conv1D's own `weight`
// is not read by forward(), so its storage may be released.
class Conv1DKernel {
 public:
  virtual ~Conv1DKernel() = default;
  // x [..., in] -> [..., out].
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias) = 0;
};

// HF's Conv1D: y = x W + b with W [in, out], plus adapter(x) when one is attached.
class Conv1DImpl : public torch::nn::Module {
 public:
  Conv1DImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  std::shared_ptr<Conv1DAdapter> adapter;
  std::shared_ptr<Conv1DKernel> kernel;  // replaces x W + b when set
};
TORCH_MODULE(Conv1D);

// Per-layer keys and values of earlier positions, preallocated to `capacity` tokens
// so decode steps never reallocate (and a CUDA graph can capture them later).
struct KvCache {
  std::vector<torch::Tensor> keys, values;  // per layer [B, H, capacity, D]
  int64_t length = 0;  // host-side count; stale while a CUDA graph replays steps
  int64_t capacity = 0;
  // Static-position mode (Gpt2Impl::useStaticPosition), for CUDA graphs: the next
  // position lives on the device and advances there, so one captured single-token
  // step replays for every position. Keys are written with index_copy_ at `position`
  // and attention spans the whole capacity, masked to slots <= position.
  torch::Tensor position;  // int64 [1]
  torch::Tensor slots;     // int64 [capacity]: 0 .. capacity-1
  torch::Tensor visible;   // bool [1, 1, 1, capacity]: this step's visible slots
  bool staticPosition() const { return position.defined(); }
  void reset() {
    length = 0;
    if (position.defined()) position.zero_();
  }
};

class Gpt2AttentionImpl : public torch::nn::Module {
 public:
  Gpt2AttentionImpl(const Gpt2Config& config, int64_t layerIndex);
  // With a cache: appends this call's keys/values at cache positions [past, past+T).
  torch::Tensor forward(const torch::Tensor& x, KvCache* cache, AttentionBackend backend);

  // Heads this layer still has. Structured pruning (core/techniques/prune.h) may leave
  // fewer than config.n_head, and a different number per layer, so the count lives
  // here rather than in the shared config.
  int64_t headCount() const { return nHead_; }
  int64_t headDim() const { return headDim_; }
  // Keeps only the heads in `keep` (ascending, unique, >= 1 of them): c_attn's q/k/v
  // columns and c_proj's rows of the others are removed, so the matrices shrink.
  void keepHeads(const std::vector<int64_t>& keep);

  Conv1D c_attn{nullptr}, c_proj{nullptr};

 private:
  int64_t nHead_, headDim_, layer_;
  double scale_, attnDrop_, residDrop_;
};
TORCH_MODULE(Gpt2Attention);

class Gpt2MlpImpl : public torch::nn::Module {
 public:
  explicit Gpt2MlpImpl(const Gpt2Config& config);
  torch::Tensor forward(const torch::Tensor& x);
  // Hidden neurons this layer still has (config.innerDim() unless structurally pruned).
  int64_t innerCount() const { return c_fc->weight.size(1); }
  // Keeps only the neurons in `keep` (ascending, unique, >= 1): c_fc's columns and bias
  // entries and c_proj's rows of the others are removed, so the matrices shrink.
  void keepNeurons(const std::vector<int64_t>& keep);
  Conv1D c_fc{nullptr}, c_proj{nullptr};

 private:
  std::string activation_;
  double drop_;
};
TORCH_MODULE(Gpt2Mlp);

class Gpt2BlockImpl : public torch::nn::Module {
 public:
  Gpt2BlockImpl(const Gpt2Config& config, int64_t layerIndex);
  torch::Tensor forward(const torch::Tensor& x, KvCache* cache, AttentionBackend backend);
  // forward()'s two residual halves, x + attn(ln_1(x)) and h + mlp(ln_2(h)): a pipeline
  // stage boundary may fall between them (core/parallel/partition.h).
  torch::Tensor forwardAttention(const torch::Tensor& x, KvCache* cache, AttentionBackend backend);
  torch::Tensor forwardMlp(const torch::Tensor& h);
  // ln_1 / ln_2 through the fused CUDA LayerNorm under autocast (fused_layer_norm.h);
  // off: LibTorch's layer_norm always. Set for the whole model by Gpt2Impl.
  void setFusedLayerNorm(bool on) { fusedLayerNorm_ = on; }
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2Mlp mlp{nullptr};

 private:
  bool fusedLayerNorm_ = true;
};
TORCH_MODULE(Gpt2Block);

class Gpt2TransformerImpl : public torch::nn::Module {
 public:
  explicit Gpt2TransformerImpl(const Gpt2Config& config);
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt2Transformer);

class Gpt2Impl : public torch::nn::Module {
 public:
  explicit Gpt2Impl(Gpt2Config config);

  // ids [B, T] (int64) -> logits [B, T, vocab]. With a cache, T new tokens continue
  // the cached ones (positions cache->length ...). On CUDA, for 256 rows or more, the
  // logits are a view with a row stride of vocab padded to 64 (logitsFromHidden).
  torch::Tensor forward(const torch::Tensor& ids, KvCache* cache = nullptr);
  // Final hidden states after ln_f, [B, T, n_embd].
  torch::Tensor hidden(const torch::Tensor& ids, KvCache* cache = nullptr);
  torch::Tensor logitsFromHidden(const torch::Tensor& hidden);

  // HF's initialisation (normal(0, initializer_range), c_proj scaled by
  // 1/sqrt(2 n_layer), zero biases, unit LayerNorms); uses the global torch RNG.
  void initWeights();
  KvCache makeCache(int64_t batch, int64_t capacity, const torch::TensorOptions& options) const;
  // Switches `cache` to static-position mode from its current length on (after an
  // ordinary prefill); later forwards take one token per call.
  void useStaticPosition(KvCache& cache) const;
  // Recompute each block's activations in backward instead of keeping them (training
  // with grad enabled and no cache only).
  void setActivationCheckpointing(bool on) { checkpointing_ = on; }
  bool activationCheckpointing() const { return checkpointing_; }
  // Every LayerNorm (ln_1, ln_2, ln_f) through the fused CUDA kernel where it applies:
  // fp32 activations on CUDA under fp16/bf16 autocast (core/model/fused_layer_norm.h).
  // On by default; off gives LibTorch's layer_norm everywhere. Elsewhere no effect.
  void setFusedLayerNorm(bool on);
  bool fusedLayerNormEnabled() const { return fusedLayerNorm_; }

  const Gpt2Config& config() const { return config_; }
  // After MLP-neuron pruning left every layer with `n` neurons: config.n_inner = n, so
  // the model saves as a plain HF GPT-2 folder again.
  void setInnerDim(int64_t n);
  void setAttentionBackend(AttentionBackend backend) { backend_ = backend; }
  AttentionBackend attentionBackend() const { return backend_; }
  int64_t parameterCount() const;  // counted once (tied weights are one tensor)
  int64_t parameterBytes() const;

  Gpt2Transformer transformer{nullptr};
  torch::Tensor lmHeadWeight;  // defined only when embeddings are untied

 private:
  Gpt2Config config_;
  AttentionBackend backend_ = AttentionBackend::Math;
  bool checkpointing_ = false;
  bool fusedLayerNorm_ = true;
};
TORCH_MODULE(Gpt2);

}  // namespace wb
