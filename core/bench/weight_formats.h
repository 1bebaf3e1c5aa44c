// The weight-format axis of benchmark sweeps: from the run's current model, a copy in
// another format — "current" (as earlier stages left it), "fp32", "fp16", "bf16"
// (casts, where LibTorch runs them on the device), "int8", "int4-g32|g64|g128" and
// "-asym" variants (weight-only, run through the dequantizing matmul). Not here: the
// sweep itself (benchmark.h) and quantization quality (the quantize stage).
#pragma once

#include <string>
#include <vector>

#include "core/model/gpt2.h"

namespace wb {

// Every name makeWeightVariant() accepts, for the profile schema and --help.
const std::vector<std::string>& benchWeightFormats();

struct WeightVariant {
  Gpt2 model{nullptr};
  std::string label;  // for the benchmark's weights column
};

// A separate copy of `model` in `format` on `device`. "current" keeps `runDtype` and is
// labelled `currentLabel`; integer formats compute in `runDtype` through the
// dequantizing kernels. InputError when the format is unknown or the device cannot
// run it (e.g. fp16 matmuls on a CPU LibTorch that lacks them).
WeightVariant makeWeightVariant(Gpt2& model, const std::string& format, torch::Dtype runDtype,
                                const torch::Device& device, const std::string& currentLabel);

}  // namespace wb
