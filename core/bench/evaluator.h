// Validation loss and perplexity over a token array, counted per target token (so
// the batch size never changes the result) and never over padding: the token stream
// is cut into non-overlapping windows of seq_len (the last one shorter), or, with a
// stride, into overlapping windows where only the tokens not yet scored count.
#pragma once

#include <cstdint>
#include <functional>

#include "core/model/gpt2.h"
#include "core/run/cancel_token.h"

namespace wb {

struct EvalOptions {
  int64_t seqLen = 256;
  int64_t batchSize = 8;
  int64_t maxWindows = 0;  // 0: every window
  int64_t stride = 0;      // 0: non-overlapping windows; else 1 <= stride <= seqLen
};

struct EvalResult {
  double loss = 0.0;  // mean next-token cross-entropy (nats)
  double perplexity = 0.0;
  int64_t tokens = 0;  // scored target tokens
  int64_t windows = 0;
  double seconds = 0.0;
};

EvalResult evaluate(Gpt2& model, const uint16_t* tokens, int64_t count, const EvalOptions& options,
                    const CancelToken* cancel = nullptr,
                    const std::function<void(int64_t done, int64_t total)>& progress = {});

}  // namespace wb
