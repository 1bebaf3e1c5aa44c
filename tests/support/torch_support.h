// Tensor comparisons for tests, each with its tolerance rule spelled out:
// |a - b| <= atol + rtol * |b| elementwise, reporting the worst element on failure.
#pragma once

#include <string>

#include "core/model/gpt2_config.h"
#include "core/torch_compat.h"

namespace wb::test {

struct CloseReport {
  bool ok = true;
  double maxAbs = 0.0;  // largest |a - b|
  double maxRel = 0.0;  // largest |a - b| / |b| over elements with b != 0
  std::string message;
};

CloseReport allClose(const torch::Tensor& a, const torch::Tensor& b, double atol, double rtol);

// A GPT-2 small enough for unit tests; each test names only what it depends on, e.g.
// tinyConfig({.vocab = 97, .positions = 300, .heads = 4}). Dropout is off unless asked.
struct TinyGpt2 {
  int64_t vocab = 64, positions = 64, embd = 32, layers = 2, heads = 2;
  double dropout = 0.0;
};
Gpt2Config tinyConfig(const TinyGpt2& t = {});

}  // namespace wb::test
