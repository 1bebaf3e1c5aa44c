// Baseline-vs-changed loss and KL; see model_compare.h.
#include "core/bench/model_compare.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"

namespace wb {

ModelComparison compareModels(Gpt2& base, Gpt2& other, const uint16_t* tokens, int64_t count,
                              int64_t seqLen, int64_t batchSize, int64_t maxWindows,
                              const CancelToken* cancel) {
  if (seqLen < 1 || batchSize < 1) throw InputError("compare models", "seq_len and batch_size must be >= 1");
  int64_t windows = (count - 1) / seqLen;
  if (maxWindows > 0) windows = std::min(windows, maxWindows);
  if (windows < 1)
    throw InputError("compare models", "need at least " + std::to_string(seqLen + 1) + " tokens, have " +
                                           std::to_string(count));
  torch::NoGradGuard noGrad;
  base->eval();
  other->eval();
  const auto device = base->parameters().front().device();
  double baseSum = 0.0, otherSum = 0.0, klSum = 0.0;
  int64_t scored = 0;
  for (int64_t w0 = 0; w0 < windows; w0 += batchSize) {
    if (cancel) cancel->throwIfCancelled();
    const int64_t nb = std::min(batchSize, windows - w0);
    auto ids = torch::empty({nb, seqLen + 1}, torch::kLong);
    auto* dst = ids.data_ptr<int64_t>();
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t t = 0; t <= seqLen; ++t) dst[b * (seqLen + 1) + t] = tokens[(w0 + b) * seqLen + t];
    ids = ids.to(device);
    const auto x = ids.narrow(1, 0, seqLen), y = ids.narrow(1, 1, seqLen).reshape({-1});
    const auto vocab = base->config().vocabSize;
    // Log-probabilities in fp32 whatever the compute dtype, so the reduction adds no error.
    const auto lpBase = torch::log_softmax(base->forward(x).reshape({-1, vocab}).to(torch::kFloat32), -1);
    const auto lpOther = torch::log_softmax(other->forward(x).reshape({-1, vocab}).to(torch::kFloat32), -1);
    baseSum -= lpBase.gather(1, y.unsqueeze(1)).sum().item<double>();
    otherSum -= lpOther.gather(1, y.unsqueeze(1)).sum().item<double>();
    klSum += (lpBase.exp() * (lpBase - lpOther)).sum().item<double>();
    scored += nb * seqLen;
  }
  ModelComparison r;
  r.tokens = scored;
  r.baseLoss = baseSum / static_cast<double>(scored);
  r.otherLoss = otherSum / static_cast<double>(scored);
  r.basePerplexity = std::exp(r.baseLoss);
  r.otherPerplexity = std::exp(r.otherLoss);
  r.kl = klSum / static_cast<double>(scored);
  return r;
}

}  // namespace wb
