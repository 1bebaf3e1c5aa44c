// `gpt2-bench perf decode`: batch-1 greedy decode latency of GPT-2 124M in fp16 on
// CUDA, eager (KV cache, one forward per token) against the same step captured in a
// CUDA graph over a static KV cache. µs per token over `newTokens` decode steps after
// the prompt's prefill, mean ± std over repeats, each timed with CUDA events after
// warm-up; the two token sequences are compared. Further paths (`paths`): the step
// through the fused kernels of kernels/decode in the same graph, with and without
// programmatic dependent launch, and with int4 weights (Conv1D only, or the LM head
// too), and the same three as one persistent cooperative kernel per token. Torch-free
// header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/bench/perf_env.h"
#include "core/bench/perf_report.h"

namespace wb {

struct DecodePerfOptions {
  std::string device = "cuda";
  std::string dtype = "fp16";
  std::string attention = "sdpa";  // the eager path's backend
  PerfModelShape model;
  int64_t promptLength = 16, newTokens = 256;
  int64_t warmup = 3, repeats = 10;
  uint64_t seed = 1337;
  // eager, graph (LibTorch ops), fused, fused-nopdl, int4 (Conv1D + LM head), int4-fp16-head,
  // the persistent kernel: persistent (fp16), int4-persistent, int4-fp16-head-persistent;
  // and other shared-memory carveouts: fused-max-smem (fp16, the largest), int4-default-smem
  // (int4, no request); the LayerNorm normalised in the kernel instead of folded:
  // fused-ln-unfolded, and in two passes: fused-ln-two-pass, int4-ln-two-pass
  std::vector<std::string> paths{"eager",          "graph",      "fused",          "fused-nopdl",
                                 "int4",           "int4-fp16-head", "persistent", "int4-persistent"};
  int64_t int4GroupSize = 128;
  int sharedCarveout = -1;  // FusedDecodeOptions::sharedCarveout of the fused paths without "smem"
  int64_t stepsPerGraph = 8;  // GraphDecodeOptions::stepsPerGraph of the fused paths
  // Non-empty: after timing, each graph path's next 32 tokens are traced with Kineto
  // (CUDA builds) into <traceDir>/decode-<path>.json (scripts/kernel-trace-summary reads it).
  std::string traceDir;
  std::string command;
};

PerfResult runDecodePerf(const DecodePerfOptions& options);

// Every --paths name runDecodePerf knows, and the same as one ", "-separated line (help
// texts and errors take it from here, so a new path is named in one place).
const std::vector<std::string>& decodePerfPaths();
std::string decodePerfPathList();

}  // namespace wb
