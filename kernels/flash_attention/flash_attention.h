/* FlashAttention-2-style fused attention for sm_90 (mma.sync tensor cores, fp32
 * accumulation, online softmax): forward writes O and the row logsumexp L, backward
 * writes dQ, dK, dV from L and D = rowsum(dO * O). Head dim 64 or 128; fp16 or bf16.
 * Not here: dropout, attention bias / masks other than causal, varlen, GQA.
 *
 * Layout: every tensor is logically [B, H, T, D] and addressed as
 *   base + b * stride[0] + h * stride[1] + t * stride[2] + d      (strides in elements)
 * so [B, H, T, D] and [B, T, H, D] storage (GPT-2's qkv split) both work without copies.
 * The last dimension must be contiguous, each base 16-byte aligned and every stride a
 * multiple of 8 elements. L (and the backward's workspace) are fp32, contiguous [B, H, Tq].
 * Causal masking is aligned bottom-right: query i sees key j when j <= i + (Tk - Tq),
 * which is a KV cache's convention; it needs Tk >= Tq. */
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/wb_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  float* lse;  // [B, H, Tq] natural-log logsumexp of the scaled scores; may be NULL
  int64_t qStride[3], kStride[3], vStride[3], oStride[3];  // batch, head, row
  int batch, heads, seqlenQ, seqlenK, headDim;
  float scale;  // multiplies Q K^T
  int causal;
  WbDtype dtype;
  int variant;  // 0: the tuned default; 1..: alternative tile shapes (benchmarks only)
} WbFlashFwdParams;

typedef struct {
  const void* q;
  const void* k;
  const void* v;
  const void* o;
  const void* dout;
  const float* lse;  // from the forward
  void* dq;
  void* dk;
  void* dv;
  // fp32 scratch of wbFlashAttnBackwardWorkspace() bytes (dQ accumulator + D).
  void* workspace;
  int64_t qStride[3], kStride[3], vStride[3], oStride[3], doStride[3];
  int64_t dqStride[3], dkStride[3], dvStride[3];
  int batch, heads, seqlenQ, seqlenK, headDim;
  float scale;
  int causal;
  WbDtype dtype;
  int variant;
} WbFlashBwdParams;

WbStatus wbFlashAttnForward(const WbFlashFwdParams* params, cudaStream_t stream);
size_t wbFlashAttnBackwardWorkspace(int batch, int heads, int seqlenQ, int headDim);
WbStatus wbFlashAttnBackward(const WbFlashBwdParams* params, cudaStream_t stream);
/* Number of tile variants selectable through `variant` (0 is always valid). */
int wbFlashAttnForwardVariants(void);
int wbFlashAttnBackwardVariants(void);

#ifdef __cplusplus
}
#endif
