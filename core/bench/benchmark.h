// The measuring half of the benchmark: sweeps batch size x sequence length x attention
// backend over one model, with warm-up runs first and then `repeats` timed runs per
// point (device synchronised around every timing). Each run gives one sample of
// prefill latency, decode latency per token, both throughputs and memory.
// Printing is bench_report.h's job; this file never formats a number.
#pragma once

#include <functional>
#include <vector>

#include "core/bench/bench_report.h"
#include "core/model/gpt2.h"
#include "core/run/cancel_token.h"

namespace wb {

struct SweepOptions {
  std::vector<int64_t> batchSizes{1};
  std::vector<int64_t> seqLens{64};
  std::vector<AttentionBackend> backends{AttentionBackend::Math, AttentionBackend::Flash};
  int64_t decodeTokens = 16;  // decode steps after the prefill (KV cache)
  int64_t warmup = 1;
  int64_t repeats = 5;
  std::string weights = "fp32";  // label of the weight format in the output
  uint64_t seed = 1234;          // for the random prompt ids
};

// Runs the sweep (the model's backend is restored afterwards). `progress(done, total)`
// after each point. Backends not in availableBackends(device) are an InputError.
std::vector<BenchPoint> runSweep(Gpt2& model, const SweepOptions& options, const CancelToken* cancel = nullptr,
                                 const std::function<void(int64_t, int64_t)>& progress = {});

// The header fields for `model` on its device (commit, device, LibTorch, timestamp).
BenchMeta benchMeta(Gpt2& model, const SweepOptions& options, const std::string& modelName);

// Wall-clock seconds of `repeats` full forward passes of [batch, seqLen] random ids
// after `warmup` untimed ones (no cache, eval mode, no grad).
std::vector<double> timeForward(Gpt2& model, int64_t batch, int64_t seqLen, int64_t warmup, int64_t repeats,
                                uint64_t seed = 1234);

}  // namespace wb
