// Kineto traces; see kineto_trace.h. The profiler header is heavy and CUDA-build only,
// so it stays in this one file.
#include "core/bench/kineto_trace.h"

#include "core/errors.h"

#if defined(WB_WITH_CUDA)
#include <torch/csrc/autograd/profiler_kineto.h>
#endif

namespace wb {

#if defined(WB_WITH_CUDA)

bool kinetoTraceBuilt() { return true; }

void startKinetoTrace() {
  namespace prof = torch::autograd::profiler;
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO);
  const std::set<prof::ActivityType> activities{prof::ActivityType::CPU, prof::ActivityType::CUDA};
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
}

void stopKinetoTrace(const std::string& path) {
  auto result = torch::autograd::profiler::disableProfiler();
  if (!result) throw RunError("kineto trace", "the profiler returned no result for " + path);
  result->save(path);
}

#else

bool kinetoTraceBuilt() { return false; }
void startKinetoTrace() { throw InputError("kineto trace", "needs a CUDA build of LibTorch"); }
void stopKinetoTrace(const std::string&) { throw InputError("kineto trace", "needs a CUDA build of LibTorch"); }

#endif

}  // namespace wb
