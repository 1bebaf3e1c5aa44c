// Score-ranked (magnitude / Wanda) and N:M pruning masks, sparsity reports; see prune.h.
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

torch::Tensor scoreOf(const std::string& name, const torch::Tensor& w, const WeightScores* scores) {
  if (scores) {
    auto it = scores->find(name);
    if (it != scores->end()) {
      if (!it->second.sizes().equals(w.sizes())) throw InputError(name, "score shape differs from the weight's");
      return it->second;
    }
  }
  return w.abs();
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
                          PruneScope scope, const WeightScores* scores) {
  if (!(sparsity >= 0.0 && sparsity < 1.0))
    throw InputError("prune sparsity", "must lie in [0, 1), got " + std::to_string(sparsity));
  torch::NoGradGuard noGrad;
  const auto weights = selectWeights(model, modules);
  PruneMasks masks;
  // Zeroes exactly `k` entries: the first k of a stable sort by score (ties by position).
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
      masks.set(name, w, maskSmallest(scoreOf(name, w, scores), k));
    }
  } else if (scope == PruneScope::PerOutput) {
    for (const auto& [name, w] : weights) {
      const int64_t in = w.size(0);
      const auto k = static_cast<int64_t>(std::llround(sparsity * static_cast<double>(in)));
      // Rank within each output column: a stable sort along the input dimension.
      const auto score = scoreOf(name, w, scores).to(torch::kCPU, torch::kFloat32);
      auto mask = torch::ones({in, w.size(1)}, torch::TensorOptions().dtype(torch::kFloat32));
      if (k > 0) {
        const auto order = std::get<1>(score.sort(true, 0, false));
        mask.scatter_(0, order.narrow(0, 0, k), 0.0);
      }
      masks.set(name, w, mask);
    }
  } else {
    std::vector<torch::Tensor> flat;
    for (const auto& [name, w] : weights)
      flat.push_back(scoreOf(name, w, scores).reshape({-1}).to(torch::kCPU, torch::kFloat32));
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

PruneMasks nmPrune(Gpt2& model, const std::vector<std::string>& modules, int64_t n, int64_t m,
                   const WeightScores* scores) {
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
    auto groups = scoreOf(name, w, scores).t().reshape({out, in / m, m});
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

std::vector<SparsityRow> layerSparsity(const std::vector<SparsityRow>& rows) {
  std::map<int64_t, SparsityRow> byLayer;
  const std::string prefix = "transformer.h.";
  for (const auto& r : rows) {
    if (!r.name.starts_with(prefix)) continue;
    const int64_t layer = std::stoll(r.name.substr(prefix.size()));
    auto& agg = byLayer[layer];
    agg.name = "layer " + std::to_string(layer);
    agg.numel += r.numel;
    agg.zeros += r.zeros;
  }
  std::vector<SparsityRow> out;
  for (const auto& [layer, row] : byLayer) out.push_back(row);
  return out;
}

}  // namespace wb
