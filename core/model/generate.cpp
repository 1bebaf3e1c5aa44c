// Sampling loop with and without the KV cache; see generate.h.
#include "core/model/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <limits>

#include "core/errors.h"

#ifdef WB_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace wb {

void synchronize(const torch::Device& device) {
#ifdef WB_WITH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#else
  (void)device;
#endif
}

int64_t sampleToken(const torch::Tensor& logitsIn, const GenerateOptions& o,
                    torch::Generator& generator) {
  auto logits = logitsIn.detach().to(torch::kCPU, torch::kFloat32).reshape({-1});
  if (o.temperature <= 0.0) return logits.argmax().item<int64_t>();
  logits = logits / o.temperature;
  if (o.topK > 0 && o.topK < logits.size(0)) {
    const auto kth = std::get<0>(logits.topk(o.topK)).min();
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  if (o.topP < 1.0) {
    auto [sorted, order] = logits.sort(/*dim=*/0, /*descending=*/true);
    const auto cumulative = torch::softmax(sorted, 0).cumsum(0);
    // Drop tokens once the mass before them already reaches top_p (the first token
    // always stays).
    auto drop = (cumulative - torch::softmax(sorted, 0)) >= o.topP;
    sorted = sorted.masked_fill(drop, -std::numeric_limits<float>::infinity());
    logits = torch::full_like(logits, -std::numeric_limits<float>::infinity()).scatter(0, order, sorted);
  }
  const auto probs = torch::softmax(logits, 0);
  return torch::multinomial(probs, 1, false, generator).item<int64_t>();
}

GenerateResult generate(Gpt2& model, const std::vector<int64_t>& prompt, const GenerateOptions& o) {
  if (prompt.empty()) throw InputError("prompt", "generation needs at least one prompt token");
  const auto& cfg = model->config();
  const int64_t total = static_cast<int64_t>(prompt.size()) + o.maxNewTokens;
  if (total > cfg.nPositions)
    throw InputError("max_new_tokens", "prompt (" + std::to_string(prompt.size()) + ") + " +
                                           std::to_string(o.maxNewTokens) + " new tokens exceed n_positions = " +
                                           std::to_string(cfg.nPositions));
  torch::NoGradGuard noGrad;
  model->eval();
  const auto param = model->parameters().front();
  const auto device = param.device();
  auto generator = at::detail::createCPUGenerator(o.seed);
  GenerateResult r;
  std::vector<int64_t> context = prompt;
  auto idsOf = [&](const std::vector<int64_t>& v) {
    return torch::tensor(v, torch::kLong).unsqueeze(0).to(device);
  };
  KvCache cache;
  if (o.useKvCache) cache = model->makeCache(1, total, param.options());
  // Wall clock with device syncs, not CUDA events: each token's latency includes the
  // host-side sampling, which is part of what a user of generate() waits for.
  using Clock = std::chrono::steady_clock;
  for (int64_t i = 0; i < o.maxNewTokens; ++i) {
    synchronize(device);
    const auto t0 = Clock::now();
    torch::Tensor logits;
    if (!o.useKvCache) {
      logits = model->forward(idsOf(context));
    } else if (i == 0) {
      logits = model->forward(idsOf(context), &cache);
    } else {
      logits = model->forward(idsOf({context.back()}), &cache);
    }
    const int64_t next = sampleToken(logits[0][logits.size(1) - 1], o, generator);
    synchronize(device);  // sampleToken copies to the CPU, which already waited
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (i == 0) r.prefillSeconds = dt; else r.decodeSeconds.push_back(dt);
    r.tokens.push_back(next);
    context.push_back(next);
    if (o.stopToken >= 0 && next == o.stopToken) break;
  }
  return r;
}

}  // namespace wb
