// Model sources; see model_loader.h.
#include "core/model/model_loader.h"

#include "core/io/hf_checkpoint.h"
#include "core/io/model_catalog.h"
#include "core/nvtx.h"

namespace wb {

Gpt2 loadModelFolder(const std::filesystem::path& folder) {
  NvtxRange range(nvtx::kLoad);
  Gpt2 model(Gpt2Config::fromFile((folder / "config.json").string()));
  loadHfWeights(*model, folder);
  return model;
}

Gpt2 loadModel(const ModelSpec& spec, uint64_t seed) {
  NvtxRange range(nvtx::kLoad);
  if (spec.source == "config") {
    torch::manual_seed(seed);
    return Gpt2(Gpt2Config::fromJson(spec.config, "/model/config", true));
  }
  return loadModelFolder(resolveModelSource(spec.source));
}

Gpt2 copyModel(Gpt2& model, torch::Dtype dtype, const torch::Device& device) {
  Gpt2 copy(model->config());
  copy->setAttentionBackend(model->attentionBackend());
  // Structurally pruned layers: shrink the copy's layers to the same head and neuron
  // counts first (which ones were kept no longer matters: the values are copied next).
  auto firstN = [](int64_t n) {
    std::vector<int64_t> keep(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) keep[static_cast<size_t>(k)] = k;
    return keep;
  };
  for (size_t i = 0; i < model->transformer->h->size(); ++i) {
    const auto src = model->transformer->h[i]->as<Gpt2Block>();
    const auto dst = copy->transformer->h[i]->as<Gpt2Block>();
    if (src->attn->headCount() != dst->attn->headCount()) dst->attn->keepHeads(firstN(src->attn->headCount()));
    if (src->mlp->innerCount() != dst->mlp->innerCount()) dst->mlp->keepNeurons(firstN(src->mlp->innerCount()));
  }
  {
    torch::NoGradGuard noGrad;
    auto src = model->named_parameters();
    for (auto& item : copy->named_parameters()) item.value().copy_(src[item.key()]);
  }
  copy->to(device, dtype);
  copy->eval();
  return copy;
}

void checkDtypeSupported(torch::Dtype dtype, const torch::Device& device) {
  try {
    const auto a = torch::ones({4, 4}, torch::TensorOptions().dtype(dtype).device(device));
    (void)torch::addmm(a, a, a).sum().item<double>();
    if (dtype != torch::kFloat32) {
      // Matmuls alone are not enough: a whole (tiny) forward pass with the KV cache
      // touches LayerNorm, GELU, softmax and the cache copies in this dtype too.
      Gpt2Config c;
      c.vocabSize = 8;
      c.nPositions = 8;
      c.nEmbd = 8;
      c.nLayer = 1;
      c.nHead = 2;
      Gpt2 tiny(c);
      tiny->to(device, dtype);
      tiny->eval();
      torch::NoGradGuard noGrad;
      auto ids = torch::zeros({1, 3}, torch::TensorOptions().dtype(torch::kLong).device(device));
      auto cache = tiny->makeCache(1, 4, torch::TensorOptions().dtype(dtype).device(device));
      for (auto backend : availableBackends(device)) {
        tiny->setAttentionBackend(backend);
        cache.reset();
        (void)tiny->forward(ids, &cache);
        (void)tiny->forward(ids.narrow(1, 0, 1), &cache).sum().item<double>();
      }
    }
  } catch (const c10::Error&) {
    throw InputError("/device/dtype",
                     std::string(c10::toString(dtype)) + " matrix products are not supported on " +
                         device.str() + " by LibTorch " + compat::torchVersion(),
                     "use fp32 (or bf16) on this device");
  }
}

}  // namespace wb
