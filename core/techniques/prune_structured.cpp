// Attention-head and MLP-neuron structured pruning; see prune_structured.h.
#include "core/techniques/prune_structured.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"

namespace wb {
namespace {

Gpt2Attention layerAttention(Gpt2& model, size_t layer) {
  return model->transformer->h[layer]->as<Gpt2Block>()->attn;
}

Gpt2Mlp layerMlp(Gpt2& model, size_t layer) { return model->transformer->h[layer]->as<Gpt2Block>()->mlp; }

// Indices of the `count` lowest scores, ascending (ties by position).
std::vector<int64_t> lowest(const std::vector<double>& scores, int64_t count, const char* what) {
  if (count < 0 || count >= static_cast<int64_t>(scores.size()))
    throw InputError(std::string("prune ") + what, std::string("can prune 0 to ") + std::to_string(scores.size() - 1) +
                                                     " " + what + " per layer, asked for " + std::to_string(count));
  std::vector<int64_t> order(scores.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] < scores[b]; });
  std::vector<int64_t> pick(order.begin(), order.begin() + count);
  std::sort(pick.begin(), pick.end());
  return pick;
}

std::vector<int64_t> complement(const std::vector<int64_t>& drop, int64_t count) {
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < count; ++i)
    if (std::find(drop.begin(), drop.end(), i) == drop.end()) keep.push_back(i);
  return keep;
}

}  // namespace

std::vector<std::vector<double>> headImportance(Gpt2& model) {
  torch::NoGradGuard noGrad;
  std::vector<std::vector<double>> out;
  for (size_t l = 0; l < model->transformer->h->size(); ++l) {
    auto attn = layerAttention(model, l);
    const int64_t heads = attn->headCount(), d = attn->headDim(), inner = heads * d;
    const auto& wa = attn->c_attn->weight;  // [E, 3 * inner]
    const auto& ba = attn->c_attn->bias;
    const auto& wp = attn->c_proj->weight;  // [inner, E]
    std::vector<double> scores;
    for (int64_t h = 0; h < heads; ++h) {
      double sq = wp.narrow(0, h * d, d).pow(2).sum().item<double>();
      for (int64_t part = 0; part < 3; ++part) {
        sq += wa.narrow(1, part * inner + h * d, d).pow(2).sum().item<double>();
        sq += ba.narrow(0, part * inner + h * d, d).pow(2).sum().item<double>();
      }
      scores.push_back(std::sqrt(sq));
    }
    out.push_back(scores);
  }
  return out;
}

namespace {
void checkHeadLists(Gpt2& model, const LayerUnits& pruneHeads) {
  if (pruneHeads.size() != model->transformer->h->size())
    throw InputError("prune heads", "one head list per layer expected (" +
                                        std::to_string(model->transformer->h->size()) + ")");
}
}  // namespace

void maskHeads(Gpt2& model, const LayerUnits& pruneHeads) {
  checkHeadLists(model, pruneHeads);
  torch::NoGradGuard noGrad;
  for (size_t l = 0; l < pruneHeads.size(); ++l) {
    auto attn = layerAttention(model, l);
    for (int64_t h : pruneHeads[l]) {
      if (h < 0 || h >= attn->headCount())
        throw InputError("prune heads", "layer " + std::to_string(l) + " has no head " + std::to_string(h));
      attn->c_proj->weight.narrow(0, h * attn->headDim(), attn->headDim()).zero_();
    }
  }
}

void removeHeads(Gpt2& model, const LayerUnits& pruneHeads) {
  checkHeadLists(model, pruneHeads);
  for (size_t l = 0; l < pruneHeads.size(); ++l) {
    auto attn = layerAttention(model, l);
    const auto keep = complement(pruneHeads[l], attn->headCount());
    if (static_cast<int64_t>(keep.size()) == attn->headCount()) continue;
    attn->keepHeads(keep);
  }
}

LayerUnits leastImportantHeads(Gpt2& model, int64_t perLayer) {
  LayerUnits out;
  for (const auto& scores : headImportance(model)) out.push_back(lowest(scores, perLayer, "heads"));
  return out;
}

std::vector<std::vector<double>> neuronImportance(Gpt2& model) {
  torch::NoGradGuard noGrad;
  std::vector<std::vector<double>> out;
  for (size_t l = 0; l < model->transformer->h->size(); ++l) {
    auto mlp = layerMlp(model, l);
    const auto fcSq = mlp->c_fc->weight.pow(2).sum(0) + mlp->c_fc->bias.pow(2);  // [inner]
    const auto projSq = mlp->c_proj->weight.pow(2).sum(1);                      // [inner]
    const auto score = (fcSq * projSq).sqrt().to(torch::kCPU, torch::kDouble).contiguous();
    out.emplace_back(score.data_ptr<double>(), score.data_ptr<double>() + score.numel());
  }
  return out;
}

void maskNeurons(Gpt2& model, const LayerUnits& pruneNeurons) {
  if (pruneNeurons.size() != model->transformer->h->size())
    throw InputError("prune neurons", "one neuron list per layer expected");
  torch::NoGradGuard noGrad;
  for (size_t l = 0; l < pruneNeurons.size(); ++l) {
    auto mlp = layerMlp(model, l);
    for (int64_t j : pruneNeurons[l]) {
      if (j < 0 || j >= mlp->innerCount())
        throw InputError("prune neurons", "layer " + std::to_string(l) + " has no neuron " + std::to_string(j));
      mlp->c_proj->weight.select(0, j).zero_();
    }
  }
}

void removeNeurons(Gpt2& model, const LayerUnits& pruneNeurons) {
  if (pruneNeurons.size() != model->transformer->h->size())
    throw InputError("prune neurons", "one neuron list per layer expected");
  for (size_t l = 0; l < pruneNeurons.size(); ++l) {
    auto mlp = layerMlp(model, l);
    const auto keep = complement(pruneNeurons[l], mlp->innerCount());
    if (static_cast<int64_t>(keep.size()) != mlp->innerCount()) mlp->keepNeurons(keep);
  }
  const int64_t first = layerMlp(model, 0)->innerCount();
  bool uniform = true;
  for (size_t l = 1; l < pruneNeurons.size(); ++l) uniform = uniform && layerMlp(model, l)->innerCount() == first;
  if (uniform) model->setInnerDim(first);
}

LayerUnits leastImportantNeurons(Gpt2& model, int64_t perLayer) {
  LayerUnits out;
  for (const auto& scores : neuronImportance(model)) out.push_back(lowest(scores, perLayer, "neurons"));
  return out;
}

}  // namespace wb
