// The launch of the per-phase decode kernels (decode.cu): cudaLaunchKernelExC with the
// per-launch attributes they take. Internal to kernels/decode; host code only.
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/status_internal.h"

namespace wbk {

// pdl: programmatic stream serialization (the kernel's pre-wait part overlaps its
// predecessor). carveout (1..100; 0: no request): the preferred shared-memory carveout,
// percent of the largest, per launch (so it is recorded in a captured graph and never
// leaks into other launches of the same kernel). An SM runs blocks of one L1 / shared
// split at a time, so a kernel whose blocks would get another split than its
// predecessor's cannot start beside it, which defeats programmatic launch: every kernel
// of a step asks for the same split. Which one is measured (docs/PERF.md, "Block shape,
// carveout and one-pass LayerNorm"): enough for the step's largest blocks, the rest L1.
// cluster > 0: thread block clusters of that many blocks along x.
inline WbStatus launchDecodeKernel(const void* kernel, dim3 grid, dim3 block, size_t smem, bool pdl, int carveout,
                                   cudaStream_t stream, const char* what, void* params, int cluster = 0) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[3];
  int n = 0;
  if (pdl) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (carveout > 0) {
    attr[n].id = cudaLaunchAttributePreferredSharedMemoryCarveout;
    attr[n++].val.sharedMemCarveout = carveout;
  }
  if (cluster > 0) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = static_cast<unsigned>(cluster);
    attr[n].val.clusterDim.y = 1;
    attr[n++].val.clusterDim.z = 1;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  void* args[] = {params};
  const cudaError_t err = cudaLaunchKernelExC(&cfg, kernel, args);
  if (err != cudaSuccess) return fail(WB_STATUS_CUDA_ERROR, "%s: %s", what, cudaGetErrorString(err));
  return checkLaunch(what);
}

}  // namespace wbk
