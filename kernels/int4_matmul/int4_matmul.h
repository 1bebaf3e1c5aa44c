/* Weight-only int4 group-wise dequantizing matmul, y = x W^T (+ bias), on the packed
 * layout of core/techniques/quantize.h: qweight uint8 [N, K/2] output-channel-major,
 * low nibble = even input; scales fp16 [N, K/group]; symmetric codes are offset by 8,
 * asymmetric ones carry uint8 zero points [N, K/group]. Groups of 32, 64 or 128.
 * x and y are fp16 or bf16 with fp32 accumulation. A GEMV for decode (M <= 8, one warp
 * per output row, 16-byte weight loads) and a tensor-core GEMM for prefill (tiles
 * dequantized into shared memory). Not here: activation quantization, int8 kernels. */
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/wb_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const void* x;           // [M, K], row stride xStride elements, unit stride along K
  const uint8_t* qweight;  // [N, K/2], contiguous
  const void* scales;      // fp16 [N, K/groupSize], contiguous
  const uint8_t* zeros;    // uint8 [N, K/groupSize], contiguous; NULL when symmetric
  const void* bias;        // [N] in the dtype of x, or NULL
  void* y;                 // [M, N], row stride yStride elements
  int64_t xStride, yStride;
  int m, n, k, groupSize;
  WbDtype dtype;
} WbInt4MatmulParams;

/* Chooses the GEMV for M <= 8 and the GEMM otherwise. */
WbStatus wbInt4Matmul(const WbInt4MatmulParams* params, cudaStream_t stream);
WbStatus wbInt4Gemv(const WbInt4MatmulParams* params, cudaStream_t stream);  /* M <= 8 */
WbStatus wbInt4Gemm(const WbInt4MatmulParams* params, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
