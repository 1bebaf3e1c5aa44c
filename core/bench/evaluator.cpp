// Token-weighted evaluation; see evaluator.h.
#include "core/bench/evaluator.h"

#include <chrono>
#include <cmath>
#include <vector>

#include "core/errors.h"
#include "core/model/generate.h"

namespace wb {
namespace {

struct Window {
  int64_t begin, length, skip;  // inputs [begin, begin+length); first `skip` targets not scored
};

std::vector<Window> makeWindows(int64_t count, const EvalOptions& o) {
  std::vector<Window> w;
  const int64_t lastInput = count - 1;  // inputs need a following target
  if (o.stride <= 0) {
    for (int64_t b = 0; b < lastInput; b += o.seqLen)
      w.push_back({b, std::min(o.seqLen, lastInput - b), 0});
  } else {
    int64_t scoredUntil = 0;  // targets at input positions < scoredUntil are done
    for (int64_t b = 0; b < lastInput; b += o.stride) {
      const int64_t e = std::min(b + o.seqLen, lastInput);
      if (e <= scoredUntil) continue;
      w.push_back({b, e - b, scoredUntil - b > 0 ? scoredUntil - b : 0});
      scoredUntil = e;
      if (e == lastInput) break;
    }
  }
  if (o.maxWindows > 0 && static_cast<int64_t>(w.size()) > o.maxWindows) w.resize(o.maxWindows);
  return w;
}

}  // namespace

EvalResult evaluate(Gpt2& model, const uint16_t* tokens, int64_t count, const EvalOptions& o,
                    const CancelToken* cancel,
                    const std::function<void(int64_t, int64_t)>& progress) {
  if (count < 2) throw InputError("eval", "the validation data holds fewer than 2 tokens");
  if (o.stride < 0 || o.stride > o.seqLen)
    throw InputError("stride", "must be between 0 and seq_len (" + std::to_string(o.seqLen) + ")");
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard noGrad;
  const bool wasTraining = model->is_training();
  model->eval();
  const auto device = model->parameters().front().device();
  const auto windows = makeWindows(count, o);
  double total = 0.0;  // accumulated in double: millions of token losses
  int64_t scored = 0;
  size_t i = 0;
  while (i < windows.size()) {
    if (cancel) cancel->throwIfCancelled();
    // Batch consecutive windows of equal length; a shorter last window runs alone.
    size_t j = i;
    while (j < windows.size() && static_cast<int64_t>(j - i) < o.batchSize &&
           windows[j].length == windows[i].length)
      ++j;
    const int64_t b = static_cast<int64_t>(j - i), t = windows[i].length;
    auto x = torch::empty({b, t}, torch::kLong);
    auto y = torch::empty({b, t}, torch::kLong);
    auto mask = torch::ones({b, t}, torch::kBool);
    for (int64_t r = 0; r < b; ++r) {
      const auto& w = windows[i + r];
      auto* px = x.data_ptr<int64_t>() + r * t;
      auto* py = y.data_ptr<int64_t>() + r * t;
      for (int64_t k = 0; k < t; ++k) {
        px[k] = tokens[w.begin + k];
        py[k] = tokens[w.begin + k + 1];
      }
      if (w.skip > 0) mask[r].narrow(0, 0, w.skip).fill_(false);
    }
    const auto logits = model->forward(x.to(device));
    const auto losses = torch::nn::functional::cross_entropy(
        logits.reshape({b * t, -1}).to(torch::kFloat32), y.to(device).reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    const auto m = mask.to(device).reshape({-1});
    total += losses.masked_select(m).to(torch::kFloat64).sum().item<double>();
    scored += m.sum().item<int64_t>();
    i = j;
    if (progress) progress(static_cast<int64_t>(i), static_cast<int64_t>(windows.size()));
  }
  synchronize(device);
  if (wasTraining) model->train();
  EvalResult r;
  r.tokens = scored;
  r.windows = static_cast<int64_t>(windows.size());
  r.loss = scored > 0 ? total / static_cast<double>(scored) : 0.0;
  r.perplexity = std::exp(r.loss);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace wb
