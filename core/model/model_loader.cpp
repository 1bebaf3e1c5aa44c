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
  // Structurally pruned layers: shrink the copy's layers to the same head counts first.
  for (size_t i = 0; i < model->transformer->h->size(); ++i) {
    const int64_t heads = model->transformer->h[i]->as<Gpt2Block>()->attn->headCount();
    if (heads == model->config().nHead) continue;
    std::vector<int64_t> keep(static_cast<size_t>(heads));
    for (int64_t k = 0; k < heads; ++k) keep[static_cast<size_t>(k)] = k;
    copy->transformer->h[i]->as<Gpt2Block>()->attn->keepHeads(keep);
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
  } catch (const c10::Error&) {
    throw InputError("/device/dtype",
                     std::string(c10::toString(dtype)) + " matrix products are not supported on " +
                         device.str() + " by LibTorch " + compat::torchVersion(),
                     "use fp32 (or bf16) on this device");
  }
}

}  // namespace wb
