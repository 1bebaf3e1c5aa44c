// Magnitude, N:M and attention-head pruning; see prune.h.
#include "core/techniques/prune.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"

namespace wb {

const std::vector<std::string>& prunableModules() {
  static const std::vector<std::string> names{"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
  return names;
}

namespace {

// "c_attn" is accepted for "attn.c_attn" (it only exists there).
std::string canonicalModule(const std::string& name) {
  if (name == "c_attn") return "attn.c_attn";
  for (const auto& m : prunableModules())
    if (m == name) return m;
  throw InputError("prune modules", "unknown module \"" + name + "\"",
                   "use c_attn, attn.c_proj, mlp.c_fc or mlp.c_proj");
}

Gpt2Attention layerAttention(Gpt2& model, size_t layer) {
  return model->transformer->h[layer]->as<Gpt2Block>()->attn;
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> selectWeights(Gpt2& model,
                                                                 const std::vector<std::string>& modules) {
  std::vector<std::string> suffixes;
  for (const auto& m : modules) suffixes.push_back("." + canonicalModule(m) + ".weight");
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : model->named_parameters()) {
    for (const auto& s : suffixes)
      if (item.key().ends_with(s)) out.emplace_back(item.key(), item.value());
  }
  if (out.empty()) throw InputError("prune modules", "no weights selected", "name at least one module");
  return out;
}

void PruneMasks::set(const std::string& name, torch::Tensor weight, torch::Tensor mask) {
  auto m = mask.to(weight.options());
  entries_.push_back({name, std::move(weight), std::move(m)});
}

void PruneMasks::apply() const {
  torch::NoGradGuard noGrad;
  for (const auto& e : entries_) e.weight.mul_(e.mask);
}

PruneMasks magnitudePrune(Gpt2& model, const std::vector<std::string>& modules, double sparsity,
                          PruneScope scope) {
  if (!(sparsity >= 0.0 && sparsity < 1.0))
    throw InputError("prune sparsity", "must lie in [0, 1), got " + std::to_string(sparsity));
  torch::NoGradGuard noGrad;
  const auto weights = selectWeights(model, modules);
  PruneMasks masks;
  // Zeroes exactly `k` entries: the first k of a stable sort by |w| (ties by position).
  auto maskSmallest = [](const torch::Tensor& score, int64_t k) {
    auto mask = torch::ones({score.numel()}, torch::TensorOptions().dtype(torch::kFloat32));
    if (k > 0) {
      auto order = std::get<1>(score.reshape({-1}).to(torch::kCPU, torch::kFloat32).sort(true, 0, false));
      mask.index_fill_(0, order.narrow(0, 0, k), 0.0);
    }
    return mask.view(score.sizes());
  };
  if (scope == PruneScope::PerTensor) {
    for (const auto& [name, w] : weights) {
      const auto k = static_cast<int64_t>(std::llround(sparsity * static_cast<double>(w.numel())));
      masks.set(name, w, maskSmallest(w.abs(), k));
    }
  } else {
    std::vector<torch::Tensor> flat;
    for (const auto& [name, w] : weights) flat.push_back(w.abs().reshape({-1}).to(torch::kCPU, torch::kFloat32));
    const auto all = torch::cat(flat);
    const auto k = static_cast<int64_t>(std::llround(sparsity * static_cast<double>(all.numel())));
    const auto mask = maskSmallest(all, k);
    int64_t offset = 0;
    for (const auto& [name, w] : weights) {
      masks.set(name, w, mask.narrow(0, offset, w.numel()).view(w.sizes()));
      offset += w.numel();
    }
  }
  masks.apply();
  return masks;
}

PruneMasks nmPrune(Gpt2& model, const std::vector<std::string>& modules, int64_t n, int64_t m) {
  if (m < 1 || n < 0 || n > m)
    throw InputError("prune n:m", "need 0 <= n <= m and m >= 1, got " + std::to_string(n) + ":" +
                                      std::to_string(m));
  torch::NoGradGuard noGrad;
  PruneMasks masks;
  for (const auto& [name, w] : selectWeights(model, modules)) {
    const int64_t in = w.size(0), out = w.size(1);
    if (in % m != 0)
      throw InputError(name, "input dimension " + std::to_string(in) + " is not a multiple of " +
                                 std::to_string(m));
    // [in, out] -> [out, in/m, m]: each last-axis row is one group of m consecutive inputs.
    auto groups = w.abs().t().reshape({out, in / m, m});
    auto keep = std::get<1>(groups.topk(n, -1, true, false));
    auto mask = torch::zeros_like(groups).scatter_(-1, keep, 1.0);
    masks.set(name, w, mask.reshape({out, in}).t().contiguous());
  }
  masks.apply();
  return masks;
}

std::vector<SparsityRow> sparsityReport(Gpt2& model, const std::vector<std::string>& modules) {
  torch::NoGradGuard noGrad;
  std::vector<SparsityRow> rows;
  SparsityRow total{"total"};
  for (const auto& [name, w] : selectWeights(model, modules)) {
    SparsityRow r{name, w.numel(), (w == 0).sum().item<int64_t>()};
    total.numel += r.numel;
    total.zeros += r.zeros;
    rows.push_back(r);
  }
  rows.push_back(total);
  return rows;
}

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
void checkHeadLists(Gpt2& model, const std::vector<std::vector<int64_t>>& pruneHeads) {
  if (pruneHeads.size() != model->transformer->h->size())
    throw InputError("prune heads", "one head list per layer expected (" +
                                        std::to_string(model->transformer->h->size()) + ")");
}
}  // namespace

void maskHeads(Gpt2& model, const std::vector<std::vector<int64_t>>& pruneHeads) {
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

void removeHeads(Gpt2& model, const std::vector<std::vector<int64_t>>& pruneHeads) {
  checkHeadLists(model, pruneHeads);
  for (size_t l = 0; l < pruneHeads.size(); ++l) {
    auto attn = layerAttention(model, l);
    std::vector<int64_t> keep;
    for (int64_t h = 0; h < attn->headCount(); ++h)
      if (std::find(pruneHeads[l].begin(), pruneHeads[l].end(), h) == pruneHeads[l].end()) keep.push_back(h);
    if (static_cast<int64_t>(keep.size()) == attn->headCount()) continue;
    attn->keepHeads(keep);
  }
}

std::vector<std::vector<int64_t>> leastImportantHeads(Gpt2& model, int64_t perLayer) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& scores : headImportance(model)) {
    if (perLayer < 0 || perLayer >= static_cast<int64_t>(scores.size()))
      throw InputError("prune heads", "can prune 0 to " + std::to_string(scores.size() - 1) +
                                          " heads per layer, asked for " + std::to_string(perLayer));
    std::vector<int64_t> order(scores.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return scores[a] < scores[b]; });
    std::vector<int64_t> pick(order.begin(), order.begin() + perLayer);
    std::sort(pick.begin(), pick.end());
    out.push_back(pick);
  }
  return out;
}

}  // namespace wb
