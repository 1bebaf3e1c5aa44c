// The LibTorch half of the perf helpers (perf_env.h is torch-free): device parsing for
// the perf measurements in core/bench/perf_*.cpp.
#pragma once

#include <string>

#include "core/torch_compat.h"

namespace wb {

// "cpu", "cuda" or "cuda:N" -> device; InputError naming --device otherwise.
torch::Device parsePerfDevice(const std::string& name);

}  // namespace wb
