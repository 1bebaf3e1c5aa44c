/* LayerNorm over the last dimension for mixed-precision training: fp32 input, fp32
 * gamma/beta, the output rounded once to fp16/bf16 (what autocast's fp32 layer_norm
 * followed by the next linear's cast gives, in one pass), and its backward from the
 * 16-bit output gradient to fp32 dx, dgamma and dbeta. dgamma/dbeta are summed per
 * block into partial rows and those reduced in a fixed order: deterministic, no atomics.
 * Not here: fp16/bf16 inputs, no-affine LayerNorm, RMSNorm. cols % 128 == 0, <= 4096. */
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/wb_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { WB_LAYERNORM_COLUMN_MULTIPLE = 128, WB_LAYERNORM_MAX_COLUMNS = 4096 };

/* Every pointer 16-byte aligned except mean and rstd; rows are contiguous (stride cols). */
typedef struct {
  const float* x;      /* [rows, cols] */
  const float* gamma;  /* [cols] */
  const float* beta;   /* [cols] */
  void* y;             /* [rows, cols] fp16/bf16 out: (x - mean) * rstd * gamma + beta */
  float* mean;         /* [rows] out */
  float* rstd;         /* [rows] out: 1 / sqrt(biased variance + eps), as torch saves it */
  int rows, cols;
  float eps;
  WbDtype dtype;       /* of y */
} WbLayerNormFwdParams;

WbStatus wbLayerNormForward(const WbLayerNormFwdParams* params, cudaStream_t stream);

typedef struct {
  const void* dy;        /* [rows, cols] fp16/bf16, gradient of y */
  const float* x;        /* [rows, cols] the forward's input */
  const float* mean;     /* [rows] from the forward */
  const float* rstd;     /* [rows] from the forward */
  const float* gamma;    /* [cols] */
  float* dx;             /* [rows, cols] out */
  float* dgammaPartial;  /* [wbLayerNormPartialRows(rows, cols), cols] scratch */
  float* dbetaPartial;   /* same size, scratch */
  float* dgamma;         /* [cols] out (overwritten, not accumulated) */
  float* dbeta;          /* [cols] out */
  int rows, cols;
  WbDtype dtype;         /* of dy */
} WbLayerNormBwdParams;

/* Rows of each partial buffer the backward needs (each row holds cols floats); depends
 * on rows and cols only, so results do not depend on the device. */
int wbLayerNormPartialRows(int rows, int cols);

WbStatus wbLayerNormBackward(const WbLayerNormBwdParams* params, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
