// Model FLOPs utilisation: achieved FLOP/s of a GPT-2 training step against a peak,
// either the matmul peak measured on the card (`gpt2-bench perf matmul`) or the
// datasheet's. Counting follows PaLM / nanoGPT: 6 N per token for the weight matmuls
// (forward + backward) plus 12 L T d for attention scores and values. Torch-free.
#pragma once

#include <cstdint>
#include <string>

#include "core/model/gpt2_config.h"

namespace wb {

// H100 SXM5 dense bf16 tensor-core peak from NVIDIA's datasheet (1979 TFLOP/s is the
// 2:4-sparse figure; this is half of it).
inline constexpr double kH100SxmBf16DenseTflops = 989.4;

// Training FLOPs per token of a causal GPT-2 at context `seqLen`: 6 N + 12 L T d with N
// the parameters that take part in matmuls (all but the position embeddings; the tied
// wte counts once, for the LM head).
double gpt2TrainFlopsPerToken(const Gpt2Config& config, int64_t parameterCount, int64_t seqLen);

struct Mfu {
  double percent = 0.0;  // clamped to [0, 100]
  bool clamped = false;  // the raw figure was above 100%: the peak or the timing is wrong
  std::string warning;   // set when clamped
};

// achievedFlops / peakFlops as a percentage, never above 100 (a raw value above 100
// is clamped and comes back with a warning naming both numbers).
Mfu modelFlopsUtilisation(double achievedFlopsPerSecond, double peakFlopsPerSecond, const std::string& peakName);

}  // namespace wb
