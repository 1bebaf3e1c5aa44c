// Warm-up + cosine learning-rate schedule; see lr_schedule.h.
#include "core/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace wb {

double warmupCosineLr(int64_t step, int64_t total, int64_t warmup, double lr, double minLr) {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup + 1);
  if (total <= warmup) return lr;
  const double progress =
      std::clamp(static_cast<double>(step - warmup) / static_cast<double>(total - warmup), 0.0, 1.0);
  return minLr + 0.5 * (1.0 + std::cos(M_PI * progress)) * (lr - minLr);
}

}  // namespace wb
