// Compares a changed model (quantized, pruned) with its baseline on the same token
// windows and in the same compute dtype: both models' mean next-token loss and the
// mean per-token KL(baseline || changed). The caller chooses the dtype; comparing a
// 16-bit model against an fp32 baseline would blame the cast on the technique.
// Not here: strided windows (evaluator.h has them); this is for deltas, not records.
#pragma once

#include <cstdint>

#include "core/model/gpt2.h"
#include "core/run/cancel_token.h"

namespace wb {

struct ModelComparison {
  double baseLoss = 0.0, otherLoss = 0.0;
  double basePerplexity = 0.0, otherPerplexity = 0.0;
  double kl = 0.0;  // nats per token, KL(p_base || p_other)
  int64_t tokens = 0;
};

// Non-overlapping windows of seqLen + 1 tokens, at most maxWindows (0: all).
ModelComparison compareModels(Gpt2& base, Gpt2& other, const uint16_t* tokens, int64_t count,
                              int64_t seqLen, int64_t batchSize, int64_t maxWindows,
                              const CancelToken* cancel = nullptr);

}  // namespace wb
