// Autoregressive generation: greedy, temperature, top-k and top-p sampling, with or
// without the KV cache, seeded (sampling runs on the CPU from its own generator, so
// a seed gives the same tokens on every device). Reports prefill latency and each
// decode step's latency, measured after device synchronisation.
#pragma once

#include <cstdint>
#include <vector>

#include "core/model/gpt2.h"

namespace wb {

struct GenerateOptions {
  int64_t maxNewTokens = 64;
  double temperature = 1.0;  // 0: greedy
  int64_t topK = 0;          // 0: off
  double topP = 1.0;         // 1: off
  bool useKvCache = true;
  uint64_t seed = 1337;
  int64_t stopToken = -1;  // e.g. 50256; -1: never stop early
};

struct GenerateResult {
  std::vector<int64_t> tokens;          // the new tokens only
  double prefillSeconds = 0.0;          // prompt forward pass (first token's logits)
  std::vector<double> decodeSeconds;    // one per further token
};

// Generates for one prompt (batch 1). The model is put in eval mode under NoGradGuard.
GenerateResult generate(Gpt2& model, const std::vector<int64_t>& prompt,
                        const GenerateOptions& options);

// Picks the next token from logits [vocab] (any device/dtype) with the options' rule.
int64_t sampleToken(const torch::Tensor& logits, const GenerateOptions& options,
                    torch::Generator& generator);

// Blocks until queued device work is done, so wall-clock timings are honest.
void synchronize(const torch::Device& device);

}  // namespace wb
