// The launch of the per-phase decode kernels (decode.cu): cudaLaunchKernelExC with the
// per-launch attributes they take. Internal to kernels/decode; host code only.
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/status_internal.h"

namespace wbk {

// pdl: programmatic stream serialization (the kernel's pre-wait part overlaps its
// predecessor). maxShared: ask for the largest shared-memory carveout, per launch (so
// it is recorded in a captured graph and never leaks into other launches of the same
// kernel). An SM runs blocks of one L1 / shared split at a time, so a kernel whose
// blocks need a larger split cannot start beside a predecessor that runs with a smaller
// one. Measured on H100 (docs/PERF.md, "Shared-memory carveout"): the int4 step, whose
// GEMVs stage their inputs in more shared memory, went from 259.7 to 223.0 us/token
// at 124M (570.3 to 494.4 at medium) with every kernel asking for the largest; the
// fp16 step went from 250.5 to 257.0, so it asks for nothing.
inline WbStatus launchDecodeKernel(const void* kernel, dim3 grid, dim3 block, size_t smem, bool pdl, bool maxShared,
                                   cudaStream_t stream, const char* what, void* params) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  int n = 0;
  if (pdl) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (maxShared) {
    attr[n].id = cudaLaunchAttributePreferredSharedMemoryCarveout;
    attr[n++].val.sharedMemCarveout = cudaSharedmemCarveoutMaxShared;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  void* args[] = {params};
  const cudaError_t err = cudaLaunchKernelExC(&cfg, kernel, args);
  if (err != cudaSuccess) return fail(WB_STATUS_CUDA_ERROR, "%s: %s", what, cudaGetErrorString(err));
  return checkLaunch(what);
}

}  // namespace wbk
