// Kineto (CUPTI) traces of CPU ops and CUDA kernels, the kernels inside CUDA graphs one
// by one, saved as Chrome trace JSON (chrome://tracing, Perfetto, or
// scripts/kernel-trace-summary): the per-kernel view Nsight Systems would give, on
// machines that do not have it. CUDA builds only; elsewhere kinetoTraceBuilt() is false
// and the other two throw.
#pragma once

#include <string>

namespace wb {

bool kinetoTraceBuilt();
void startKinetoTrace();
// Stops the trace begun by startKinetoTrace() and writes it to `path`.
void stopKinetoTrace(const std::string& path);

}  // namespace wb
