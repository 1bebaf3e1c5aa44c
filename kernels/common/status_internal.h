// Kernel-side helpers for the C API's status codes: record a formatted message and
// return the code, or turn the last CUDA launch error into one. Internal to kernels/.
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/wb_kernels.h"

namespace wbk {

WbStatus fail(WbStatus status, const char* fmt, ...);
// Checks cudaGetLastError() after a launch; clears the message on success.
WbStatus checkLaunch(const char* what);

}  // namespace wbk
