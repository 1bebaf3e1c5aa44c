// Stage partitioning; see partition.h.
#include "core/parallel/partition.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "core/run/profile.h"

namespace wb {
namespace {

std::vector<StagePlan> fromCuts(const std::vector<int64_t>& layerCosts, int64_t embeddingCost,
                                int64_t headCost, const std::vector<int64_t>& counts) {
  std::vector<StagePlan> plan;
  int64_t first = 0;
  for (size_t s = 0; s < counts.size(); ++s) {
    StagePlan p;
    p.firstLayer = first;
    p.endLayer = first + counts[s];
    p.embeddings = s == 0;
    p.head = s + 1 == counts.size();
    for (int64_t l = p.firstLayer; l < p.endLayer; ++l)
      p.cost += layerCosts[static_cast<size_t>(l)];
    if (p.embeddings) p.cost += embeddingCost;
    if (p.head) p.cost += headCost;
    plan.push_back(p);
    first = p.endLayer;
  }
  return plan;
}

void checkStageCount(int stages, size_t layers) {
  if (stages < 1) throw ProfileError({}, "/parallel/pipeline_stages", "expected at least 1 stage");
  if (static_cast<size_t>(stages) > layers)
    throw ProfileError({}, "/parallel/pipeline_stages",
                       std::to_string(stages) + " pipeline stages but the model has only " +
                           std::to_string(layers) + " layers (each stage needs at least one)");
}

}  // namespace

std::vector<StagePlan> balancedPartition(const std::vector<int64_t>& costs, int64_t embeddingCost,
                                         int64_t headCost, int stages) {
  checkStageCount(stages, costs.size());
  const size_t l = costs.size(), n = static_cast<size_t>(stages);
  std::vector<int64_t> prefix(l + 1, 0);
  std::partial_sum(costs.begin(), costs.end(), prefix.begin() + 1);
  auto stageCost = [&](size_t s, size_t from, size_t to) {
    return prefix[to] - prefix[from] + (s == 0 ? embeddingCost : 0) + (s + 1 == n ? headCost : 0);
  };
  // best[s][i]: smallest possible largest cost when stages 0..s hold layers [0, i).
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
  std::vector<int64_t> counts(n);
  size_t end = l;
  for (size_t s = n; s-- > 0;) {
    const size_t begin = s == 0 ? 0 : cut[s][end];
    counts[s] = static_cast<int64_t>(end - begin);
    end = begin;
  }
  return fromCuts(costs, embeddingCost, headCost, counts);
}

std::vector<StagePlan> explicitPartition(const std::vector<int64_t>& costs, int64_t embeddingCost,
                                         int64_t headCost, const std::vector<int64_t>& balance) {
  checkStageCount(static_cast<int>(balance.size()), costs.size());
  int64_t sum = 0;
  for (size_t i = 0; i < balance.size(); ++i) {
    if (balance[i] < 1)
      throw ProfileError({}, "/parallel/balance/" + std::to_string(i),
                         "every stage needs at least one layer, got " + std::to_string(balance[i]));
    sum += balance[i];
  }
  if (sum != static_cast<int64_t>(costs.size()))
    throw ProfileError({}, "/parallel/balance",
                       "the layers per stage sum to " + std::to_string(sum) +
                           " but the model has " + std::to_string(costs.size()) +
                           " layers (n_layer)");
  return fromCuts(costs, embeddingCost, headCost, balance);
}

std::string describe(const std::vector<StagePlan>& plan) {
  std::string s;
  for (const auto& p : plan) {
    if (!s.empty()) s += " | ";
    s += (p.embeddings ? "emb+" : "") + std::string("h") + std::to_string(p.firstLayer) + "-" +
         std::to_string(p.endLayer - 1) + (p.head ? "+head" : "");
  }
  return s;
}

}  // namespace wb
