/* Shared vocabulary of the kernels' C API: element types, status codes and the
 * thread-local message that explains the last failure. Plain C so any front end can
 * call it; no LibTorch, no Qt. Each operation's own header includes this one. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { WB_DTYPE_F16 = 0, WB_DTYPE_BF16 = 1 } WbDtype;

typedef enum {
  WB_STATUS_OK = 0,
  WB_STATUS_INVALID_ARGUMENT = 1,  // a size, stride, pointer or alignment the kernel cannot take
  WB_STATUS_UNSUPPORTED = 2,       // valid, but not built (e.g. a head dim without a kernel)
  WB_STATUS_CUDA_ERROR = 3         // a launch or runtime call failed
} WbStatus;

/* The message of the last non-OK status returned on this thread ("" when none). */
const char* wbKernelsLastError(void);

#ifdef __cplusplus
}
#endif
