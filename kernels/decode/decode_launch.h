// Host-side launch setting shared by the per-phase decode kernels (decode.cu,
// decode_mlp.cu). Internal to kernels/decode.
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/status_internal.h"

namespace wbk {

// Every decode kernel asks for the largest shared-memory carveout. An SM runs blocks
// of one carveout at a time: with mixed preferences, a kernel whose blocks need more
// shared memory than the SM's current split cannot start there until the predecessor
// drains, which defeats programmatic launch. Measured on H100 (docs/PERF.md, "Shared
// memory carveout"): int4 decode 274 -> 234 us/token at 124M. The GEMVs stream weights
// past L1, so the smaller L1 costs them nothing.
inline WbStatus preferSharedMemory(const void* kernel, const char* what) {
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared) !=
      cudaSuccess)
    return checkLaunch(what);
  return WB_STATUS_OK;
}

}  // namespace wbk
