/* One batch-1 GPT-2 decode step (one new token) as a single persistent cooperative
 * kernel: every block loops over all layers' phases (LayerNorm + c_attn with the KV-cache
 * write, split attention, combine + attn.c_proj + residual, LayerNorm + c_fc + GELU,
 * mlp.c_proj + residual; then ln_f + LM head + argmax that feeds the token back), with a
 * grid-wide barrier between phases. A block fetches the next phase's weights (its first
 * two rows per warp, into registers), LayerNorm parameters, bias and residual elements
 * while finishing a phase and waiting at the barrier, and has L2 fetch the phase after
 * that. Same arithmetic and rounding as the per-phase kernels of decode.h; fp16 or int4
 * layer weights, fp16 or int4 LM head. Needs cooperative launch (sm_90 here) and head dim 64. Not here:
 * batches > 1, sampling, bf16, pruned heads. */
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/wb_kernels.h"
#include "kernels/decode/decode.h" /* WbDecodeWeight */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const void* ln1Weight;
  const void* ln1Bias;
  const void* ln2Weight;
  const void* ln2Bias;
  WbDecodeWeight qkv, proj, fc, mproj; /* [3E, E], [E, E], [inner, E], [E, inner] */
  void* kCache;                        /* fp16 [heads, capacity, 64] */
  void* vCache;
  float scale; /* applied to q.k */
  int pad;
} WbDecodeLayer;

typedef struct {
  const WbDecodeLayer* layers; /* DEVICE array [nLayer]: all fp16 or all int4 weights */
  int nLayer, embd, inner, heads, vocab, capacity;
  int layersInt4; /* nonzero: the layer weights are int4 */
  float lnEps;
  const void* wte; /* fp16 [vocab, embd] */
  const void* wpe; /* fp16 [positions, embd] */
  const void* lnfWeight;
  const void* lnfBias;
  WbDecodeWeight head;      /* [vocab, embd], bias NULL */
  int64_t* token;           /* [1]: read, then overwritten with the argmax */
  int64_t* position;        /* [1]: read, then advanced */
  int64_t* tokens;          /* [capacity]: tokens[position + 1] = argmax */
  void* residual;           /* fp16 [embd] */
  void* q;                  /* fp16 [embd] */
  void* hidden;             /* fp16 [inner] */
  void* logits;             /* fp16 [vocab] */
  float* partO;             /* [heads, splits, 64], splits = wbDecodeAttentionSplits(capacity) */
  float* partMl;            /* [heads, splits, 2] */
  float* argmaxValues;      /* [argmaxSlots] >= blocks */
  int* argmaxIndices;
  unsigned* argmaxCounter;  /* zero before the first launch; the kernel leaves it zero */
  int argmaxSlots;
  unsigned long long* barrier; /* [2] zero before the first launch; the kernels keep them */
  int blocks;               /* set by wbDecodePersistentSetup */
  size_t sharedBytes;       /* set by wbDecodePersistentSetup */
} WbDecodePersistentParams;

/* Checks the shapes, the device's cooperative-launch support and the kernel's occupancy,
 * and fills blocks (one per SM) and sharedBytes. WB_STATUS_UNSUPPORTED when the
 * persistent step cannot run here: use the per-phase kernels of decode.h instead. */
WbStatus wbDecodePersistentSetup(WbDecodePersistentParams* params);

/* One step on `stream` (capturable into a CUDA graph). */
WbStatus wbDecodePersistent(const WbDecodePersistentParams* params, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
