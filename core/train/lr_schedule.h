// Linear warm-up then cosine decay to a floor, as nanoGPT: step s (0-based) of
// `total` gets lr * (s+1)/(warmup+1) during warm-up, then decays to minLr at `total`.
#pragma once

#include <cstdint>

namespace wb {

double warmupCosineLr(int64_t step, int64_t total, int64_t warmup, double lr, double minLr);

}  // namespace wb
