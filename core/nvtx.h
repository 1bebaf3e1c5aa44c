// NVTX ranges around the phases of a run (load, forward, backward, optimizer,
// communication) so Nsight Systems timelines read well. Header-only NVTX 3 from the
// CUDA toolkit: nothing to link, and compiled out entirely in builds without CUDA.
// Not a profiler: without Nsight attached a range costs a few nanoseconds.
#pragma once

#if defined(WB_WITH_CUDA) && __has_include(<nvtx3/nvToolsExt.h>)
#include <nvtx3/nvToolsExt.h>
#define WB_HAS_NVTX 1
#endif

namespace wb {

// Names used across the code base, so timelines group the same phase together.
namespace nvtx {
inline constexpr const char* kLoad = "load";
inline constexpr const char* kForward = "forward";
inline constexpr const char* kBackward = "backward";
inline constexpr const char* kOptimizer = "optimizer";
inline constexpr const char* kCommunication = "communication";
}  // namespace nvtx

// Pushes a range on construction and pops it on destruction (the calling thread's stack).
class NvtxRange {
 public:
#ifdef WB_HAS_NVTX
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
#else
  explicit NvtxRange(const char*) {}
#endif
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

constexpr bool nvtxCompiledIn() {
#ifdef WB_HAS_NVTX
  return true;
#else
  return false;
#endif
}

}  // namespace wb
