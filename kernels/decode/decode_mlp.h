/* A GPT-2 MLP for batch-1 decode in one kernel: LayerNorm + c_fc + bias + tanh-GELU +
 * c_proj, split over the hidden units. Each block owns rowsPerBlock consecutive hidden
 * units: it computes them from the whole LayerNorm input, multiplies them by their rows
 * of c_proj (Conv1D's [inner, embd] layout, where hidden unit j is row j) and adds the
 * bias-free partial sums into an fp32 delta with atomics. The consumer (the next
 * layer's LayerNorm GEMV, decode.h's `delta` input) adds bias and residual, so the MLP
 * costs one grid-wide dependency instead of two. Weights (fp16, or int4 with c_proj
 * transposed: see WbDecodeMlpParams) are copied to shared memory before
 * griddepcontrol.wait. Summation order across blocks follows the atomics, so results
 * can differ from run to run in the last fp32 bit before rounding to fp16. */
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/wb_kernels.h"
#include "kernels/decode/decode.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int embd, inner;          /* C (a multiple of 64, <= 2048), H */
  int rowsPerBlock;         /* hidden units per block: 16 or 32, dividing H */
  const void* x;            /* fp16 [C]: the residual stream entering the MLP */
  const void* lnWeight;     /* fp16 [C] */
  const void* lnBias;
  float lnEps;
  WbDecodeWeight fc;        /* rows [H, C] (fp16 or int4 as decode.h), bias fp16 [H] */
  /* c_proj with hidden unit j as row j: fp16 [H, C] (the Conv1D weight as stored), or
   * int4: codes uint8 [H, C / 2] (low nibble = even column), scales fp16 [H / g, C] and
   * zeros uint8 [H / g, C] or NULL (symmetric: codes offset by 8); g in 32, 64, 128 and
   * a multiple of rowsPerBlock. */
  const void* proj;
  const uint8_t* qProj;
  const void* projScales;
  const uint8_t* projZeros;
  int projGroupSize;
  float* delta;             /* fp32 [C], zero before the launch: += c_proj(gelu(..)) without bias */
  int programmaticLaunch;
  WbDecodePrefetch prefetch;
} WbDecodeMlpParams;

WbStatus wbDecodeMlp(const WbDecodeMlpParams* params, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
