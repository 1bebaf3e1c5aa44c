// The launch of the per-phase decode kernels (decode.cu): cudaLaunchKernelExC with the
// per-launch attributes they take. Internal to kernels/decode; host code only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/status_internal.h"
#include "kernels/decode/decode.h"

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

// A launch's L2 prefetch ranges (WbDecodeL2Range): each unused (no pointer) or 16-byte
// aligned with a size that is not negative; `what` names the kernel in the error.
inline WbStatus checkL2Ranges(const WbDecodeL2Range (&ranges)[WB_DECODE_L2_RANGES], const char* what) {
  for (int r = 0; r < WB_DECODE_L2_RANGES; ++r) {
    if (!ranges[r].ptr) continue;
    if (reinterpret_cast<uintptr_t>(ranges[r].ptr) % 16 || ranges[r].bytes < 0)
      return fail(WB_STATUS_INVALID_ARGUMENT, "%s: L2 prefetch range %d must be 16-byte aligned, with bytes >= 0 (got %lld)",
                  what, r, ranges[r].bytes);
  }
  return WB_STATUS_OK;
}

}  // namespace wbk
