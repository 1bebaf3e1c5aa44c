// Tensor comparisons for tests, each with its tolerance rule spelled out:
// |a - b| <= atol + rtol * |b| elementwise, reporting the worst element on failure.
#pragma once

#include <string>

#include "core/torch_compat.h"

namespace wb::test {

struct CloseReport {
  bool ok = true;
  double maxAbs = 0.0;  // largest |a - b|
  double maxRel = 0.0;  // largest |a - b| / |b| over elements with b != 0
  std::string message;
};

CloseReport allClose(const torch::Tensor& a, const torch::Tensor& b, double atol, double rtol);

}  // namespace wb::test
