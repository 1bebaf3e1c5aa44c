// The thread-local error message behind wbKernelsLastError, and the helpers the
// kernels' entry points use to set it. Nothing else lives here.
#include <cstdarg>
#include <cstdio>

#include "kernels/common/status_internal.h"

namespace {
thread_local char lastError[512] = "";
}

extern "C" const char* wbKernelsLastError(void) { return lastError; }

namespace wbk {

WbStatus fail(WbStatus status, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(lastError, sizeof(lastError), fmt, args);
  va_end(args);
  return status;
}

WbStatus checkLaunch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    return fail(WB_STATUS_CUDA_ERROR, "%s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
  lastError[0] = '\0';
  return WB_STATUS_OK;
}

}  // namespace wbk
