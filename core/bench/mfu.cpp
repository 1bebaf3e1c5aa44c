// MFU arithmetic; see mfu.h.
#include "core/bench/mfu.h"

#include <cstdio>

#include "core/errors.h"

namespace wb {

double gpt2TrainFlopsPerToken(const Gpt2Config& c, int64_t parameterCount, int64_t seqLen) {
  const double n = static_cast<double>(parameterCount - c.nPositions * c.nEmbd);
  const double attention = 12.0 * static_cast<double>(c.nLayer) * static_cast<double>(seqLen) *
                           static_cast<double>(c.nEmbd);
  return 6.0 * n + attention;
}

Mfu modelFlopsUtilisation(double achieved, double peak, const std::string& peakName) {
  if (!(peak > 0.0)) throw InputError("mfu", "the peak FLOP/s must be positive (" + peakName + ")");
  Mfu m;
  const double raw = 100.0 * achieved / peak;
  m.percent = raw < 0.0 ? 0.0 : raw;
  if (raw > 100.0) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "MFU against %s came out at %.1f%% (%.1f of %.1f TFLOP/s): clamped to 100%%; the peak "
                  "is too low or the step time too short",
                  peakName.c_str(), raw, achieved * 1e-12, peak * 1e-12);
    m.percent = 100.0;
    m.clamped = true;
    m.warning = buf;
  }
  return m;
}

}  // namespace wb
