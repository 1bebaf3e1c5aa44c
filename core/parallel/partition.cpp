// Stage partitioning; see partition.h.
#include "core/parallel/partition.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

#include "core/run/profile.h"

namespace wb {
namespace {

// halves[s]: half-blocks on stage s.
std::vector<StagePlan> fromCounts(const std::vector<int64_t>& halfCosts, int64_t embeddingCost,
                                  int64_t headCost, const std::vector<int64_t>& halves) {
  std::vector<StagePlan> plan;
  int64_t first = 0;
  for (size_t s = 0; s < halves.size(); ++s) {
    StagePlan p;
    p.begin = first;
    p.end = first + halves[s];
    p.embeddings = s == 0;
    p.head = s + 1 == halves.size();
    for (int64_t u = p.begin; u < p.end; ++u) p.cost += halfCosts[static_cast<size_t>(u)];
    if (p.embeddings) p.cost += embeddingCost;
    if (p.head) p.cost += headCost;
    plan.push_back(p);
    first = p.end;
  }
  return plan;
}

void checkHalfCosts(const std::vector<int64_t>& halfCosts) {
  if (halfCosts.empty() || halfCosts.size() % 2 != 0)
    throw RunError("pipeline", "partition costs need two entries per block, got " +
                                   std::to_string(halfCosts.size()));
}

}  // namespace

std::vector<StagePlan> balancedPartition(const std::vector<int64_t>& halfCosts, int64_t embeddingCost,
                                         int64_t headCost, int stages, bool halfCuts) {
  checkHalfCosts(halfCosts);
  const size_t per = halfCuts ? 1 : 2;  // half-blocks per unit of the search
  std::vector<int64_t> costs;
  for (size_t u = 0; u < halfCosts.size(); u += per)
    costs.push_back(halfCuts ? halfCosts[u] : halfCosts[u] + halfCosts[u + 1]);
  if (stages < 1) throw ProfileError({}, "/parallel/pipeline_stages", "expected at least 1 stage");
  if (static_cast<size_t>(stages) > costs.size())
    throw ProfileError({}, "/parallel/pipeline_stages",
                       std::to_string(stages) + " pipeline stages but the model has only " +
                           std::to_string(halfCosts.size() / 2) + " layers (each stage needs at least " +
                           (halfCuts ? "half a layer)" : "one)"));
  const size_t l = costs.size(), n = static_cast<size_t>(stages);
  std::vector<int64_t> prefix(l + 1, 0);
  std::partial_sum(costs.begin(), costs.end(), prefix.begin() + 1);
  auto stageCost = [&](size_t s, size_t from, size_t to) {
    return prefix[to] - prefix[from] + (s == 0 ? embeddingCost : 0) + (s + 1 == n ? headCost : 0);
  };
  // best[s][i]: smallest possible largest cost when stages 0..s hold units [0, i).
  constexpr int64_t kInf = std::numeric_limits<int64_t>::max();
  std::vector<std::vector<int64_t>> best(n, std::vector<int64_t>(l + 1, kInf));
  std::vector<std::vector<size_t>> cut(n, std::vector<size_t>(l + 1, 0));
  for (size_t i = 1; i <= l; ++i) best[0][i] = stageCost(0, 0, i);
  for (size_t s = 1; s < n; ++s)
    for (size_t i = s + 1; i <= l; ++i)
      for (size_t j = s; j < i; ++j) {
        if (best[s - 1][j] == kInf) continue;
        const int64_t c = std::max(best[s - 1][j], stageCost(s, j, i));
        if (c < best[s][i]) {
          best[s][i] = c;
          cut[s][i] = j;
        }
      }
  std::vector<int64_t> halves(n);
  size_t end = l;
  for (size_t s = n; s-- > 0;) {
    const size_t begin = s == 0 ? 0 : cut[s][end];
    halves[s] = static_cast<int64_t>((end - begin) * per);
    end = begin;
  }
  return fromCounts(halfCosts, embeddingCost, headCost, halves);
}

int64_t balanceHalves(double layers, size_t index) {
  const double twice = layers * 2.0;
  if (!std::isfinite(layers) || twice < 1.0 || std::abs(twice - std::round(twice)) > 1e-9)
    throw ProfileError({}, "/parallel/balance/" + std::to_string(index),
                       "every stage needs a whole or half number of layers (at least 0.5; a half "
                       "splits a block between its attention and its MLP), got " +
                           [&] {
                             std::ostringstream os;
                             os << layers;
                             return os.str();
                           }());
  return static_cast<int64_t>(std::llround(twice));
}

std::vector<StagePlan> explicitPartition(const std::vector<int64_t>& halfCosts, int64_t embeddingCost,
                                         int64_t headCost, const std::vector<double>& balance) {
  checkHalfCosts(halfCosts);
  if (balance.empty()) throw ProfileError({}, "/parallel/balance", "expected at least 1 stage");
  std::vector<int64_t> halves;
  int64_t sum = 0;
  for (size_t i = 0; i < balance.size(); ++i) {
    halves.push_back(balanceHalves(balance[i], i));
    sum += halves.back();
  }
  if (sum != static_cast<int64_t>(halfCosts.size()))
    throw ProfileError({}, "/parallel/balance",
                       "the layers per stage sum to " + halvesText(sum) +
                           " but the model has " + std::to_string(halfCosts.size() / 2) +
                           " layers (n_layer)");
  return fromCounts(halfCosts, embeddingCost, headCost, halves);
}

std::string halvesText(int64_t halves) {
  return std::to_string(halves / 2) + (halves % 2 ? ".5" : "");
}

std::string describe(const std::vector<StagePlan>& plan) {
  auto unit = [](int64_t u, bool start) {
    const std::string l = std::to_string(u / 2);
    if (u % 2 == 0) return start ? l : l + ".attn";
    return start ? l + ".mlp" : l;
  };
  std::string s;
  for (const auto& p : plan) {
    if (!s.empty()) s += " | ";
    const std::string from = unit(p.begin, true), to = unit(p.end - 1, false);
    // A lone half names itself once: "h8.mlp", "h8.attn".
    std::string range = "h" + from + "-" + to;
    if (p.end - p.begin == 1) range = "h" + std::to_string(p.begin / 2) + (p.begin % 2 ? ".mlp" : ".attn");
    s += (p.embeddings ? "emb+" : "") + range + (p.head ? "+head" : "");
  }
  return s;
}

}  // namespace wb
