/* Fused batch-1 decode kernels for GPT-2 (one new token per step, fp16 activations):
 * a GEMV over fp16 rows [N, K] or the packed int4 layout of kernels/int4_matmul whose
 * prologue builds its input vector (plain, LayerNorm, embedding + LayerNorm, or the
 * combine of split attention partials) and whose epilogue stores, applies tanh-GELU,
 * adds into the residual, scatters q/k/v into a static KV cache at the device-side
 * position, or takes the argmax of the logits and advances that position; and a
 * single-query attention over the cache split into 64-key chunks. Every kernel can be
 * launched with programmatic dependent launch (sm_90): it reads its constant weights
 * before waiting for the previous kernel. Not here: batches > 1, sampling, bf16. */
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/wb_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  WB_DECODE_IN_PLAIN = 0,      /* x as given */
  WB_DECODE_IN_LAYERNORM = 1,  /* LayerNorm(x) with lnWeight, lnBias, lnEps */
  WB_DECODE_IN_EMBED = 2,      /* e = wte[*token] + wpe[*position], stored to residual; input LayerNorm(e) */
  WB_DECODE_IN_ATTENTION = 3,  /* the combine of WbDecodeAttentionParams' partials, one head per headDim inputs */
  WB_DECODE_IN_HEADS = 4       /* LayerNorm(x + (sum of headPartials + headBias)): the residual after an attention
                                  block (wbDecodeAttentionBlock) or an MLP block (wbDecodeMlpBlock); stored to
                                  residual by block 0 where residual is set */
} WbDecodeInput;

typedef enum {
  WB_DECODE_OUT_STORE = 0,     /* y[n] = x.W[n] + b[n] */
  WB_DECODE_OUT_GELU = 1,      /* y[n] = gelu_tanh(x.W[n] + b[n]) */
  WB_DECODE_OUT_RESIDUAL = 2,  /* y[n] += x.W[n] + b[n] (y is the residual stream, updated in place) */
  WB_DECODE_OUT_QKV = 3,       /* n < E: y[n] = q; then k and v into kCache/vCache at *position (N = 3E) */
  WB_DECODE_OUT_ARGMAX = 4     /* y = logits; *nextToken = first argmax, tokens[*position + 1] = it, ++*position */
} WbDecodeOutput;

/* A GEMV weight, shared by the per-phase kernels here and the persistent step of
 * decode_persistent.h: exactly one of weight (fp16) or qweight (int4, + scales, zeros,
 * groupSize). */
typedef struct {
  const void* weight;                   /* fp16 rows [N, K], contiguous */
  const uint8_t* qweight;               /* uint8 [N, K/2], low nibble = even input */
  const void* scales;                   /* fp16 [N, K/groupSize] */
  const uint8_t* zeros;                 /* uint8 [N, K/groupSize] or NULL (symmetric: codes offset by 8) */
  int groupSize;                        /* 32, 64 or 128 */
  const void* bias;                     /* fp16 [N] or NULL */
} WbDecodeWeight;

/* An int4 LM head (groups of 128) repacked into tiles of 16 rows for the row-tile argmax
 * kernel: each lane's 32-bit word is the A fragment of one mma.m16n8k16 in the order the
 * nibble trick unpacks it, so one mma takes 16 rows times 16 inputs with x in every
 * column of B and no sum over the warp (core/model/int4_row_tiles.h packs it and says
 * which code goes where). K/64 must be 12, 16 or 20 (GPT-2 small, medium, large). */
typedef struct {
  const uint32_t* codes;   /* [tiles, K/64, 32 lanes, 4 k-steps] */
  const uint32_t* scales;  /* [tiles, K/128, 8]: fp16 pairs (row g, row g + 8) */
  const uint16_t* zeros;   /* [tiles, K/128, 8]: byte pairs, or NULL (symmetric: codes offset by 8) */
  int blocksPerSm;         /* resident blocks an SM the launch asks for, 1..3 (0: 3) */
} WbDecodeRowTiles;

typedef struct {
  WbDecodeInput input;
  WbDecodeOutput output;
  int n, k;  /* output rows, input features (K % 32 == 0) */
  /* input */
  const void* x;                        /* fp16 [K]: PLAIN, LAYERNORM */
  const void* lnWeight;                 /* fp16 [K]: LAYERNORM, EMBED */
  const void* lnBias;                   /* fp16 [K] */
  float lnEps;
  const void* wte;                      /* fp16 [vocab, K]: EMBED */
  const void* wpe;                      /* fp16 [positions, K]: EMBED */
  const int64_t* token;                 /* [1]: EMBED */
  void* residual;                       /* fp16 [K]: EMBED writes e here, HEADS (if set) the residual it builds */
  const float* attnO;                   /* [heads, splits, headDim]: ATTENTION */
  const float* attnMl;                  /* [heads, splits, 2] (max in log2 units, sum) */
  int attnSplits;
  const int64_t* position;              /* the step's position: EMBED, ATTENTION, QKV, ARGMAX */
  WbDecodeWeight weight;                /* [N, K] and bias [N] */
  /* output */
  void* y;                              /* fp16, see WbDecodeOutput */
  void* kCache;                         /* fp16 [heads, capacity, headDim]: QKV */
  void* vCache;
  int capacity, heads, headDim;         /* QKV, ATTENTION (heads * headDim == K), ARGMAX (capacity) */
  float* argmaxValues;                  /* ARGMAX scratch, argmaxSlots entries each */
  int* argmaxIndices;
  unsigned* argmaxCounter;              /* zero before the first launch; the kernel leaves it zero */
  int argmaxSlots;
  unsigned long long* argmaxBest;       /* ARGMAX, or NULL: each block raises this one key (logit bits made
                                           monotone, above the complement of the row) with an atomic max, and
                                           the last block reads it instead of every block's candidate; zero
                                           before the first launch, left zero */
  WbDecodeRowTiles rowTiles;            /* ARGMAX: codes set runs the row-tile kernel on these (weight.qweight
                                           is then not read; weight.groupSize 128, weight.bias as usual) */
  int64_t* nextToken;                   /* [1] */
  int64_t* tokens;                      /* [capacity] */
  int programmaticLaunch;               /* nonzero: launch with programmatic stream serialization */
  int sharedCarveout;                   /* 1..100: preferred shared-memory carveout, percent (0: no request) */
  int lnTwoPass;                        /* LAYERNORM: nonzero: two passes over x (mean, then centred squares),
                                           LibTorch's order; 0: one pass, sums of x and x^2 */
  /* HEADS input, and RESIDUAL output after an attention block: the residual is taken as
     x + fp16(sum over heads of headPartials + headBias), each sum rounded to fp16 (the
     eager path's attn.c_proj output and residual add), the heads added in order. */
  float* headPartials;                  /* [headCount, K] (HEADS) or [headCount, N] (RESIDUAL) */
  const void* headBias;                 /* fp16 attn.c_proj bias, same length */
  int headCount;
  int headClear;                        /* RESIDUAL: zero headPartials' rows once read (an accumulating
                                           attention block adds into them again next layer) */
  /* LAYERNORM or EMBED input with fp16 weights: the LayerNorm folded into the GEMV. With g = lnWeight,
     y[n] = rstd * (sum_k W[n,k] g[k] x[k] - mean * lnRowScale[n]) + lnRowShift[n], so the
     products start before the statistics of x are reduced (the normalised x is not
     rounded to fp16 first, as the eager path does). */
  int lnFolded;
  const float* lnRowScale;              /* [N]: sum_k W[n,k] lnWeight[k] */
  const float* lnRowShift;              /* [N]: sum_k W[n,k] lnBias[k] + bias[n] (bias then unused) */
  /* int4 weights in groups of 128 with K a multiple of 1024, any output: nonzero runs
     the products on tensor cores (mma.sync m16n8k16, fp16 codes minus zero point times fp16 x,
     fp32 accumulation, one scale per group); other shapes, and the attention block, take the
     half2 path. */
  int int4Mma;
} WbDecodeLinearParams;

typedef struct {
  const void* q;         /* fp16 [heads * headDim] */
  const void* kCache;    /* fp16 [heads, capacity, headDim] */
  const void* vCache;
  const int64_t* position;  /* keys 0 .. *position are visible */
  float* partO;          /* [heads, splits, headDim], unnormalised */
  float* partMl;         /* [heads, splits, 2] */
  int heads, headDim, capacity;
  float scale;           /* applied to q.k */
  int programmaticLaunch;
  int sharedCarveout;    /* as WbDecodeLinearParams */
} WbDecodeAttentionParams;

/* ln_1 + c_attn + single-query attention + attn.c_proj for one layer in one launch: a
 * cluster of 8 blocks per head (sm_90). Each block computes 8 of the head's 64 q, k and
 * v dims (k/v also into the cache at *position) and shares them with its cluster
 * through distributed shared memory; the 8 blocks attend to interleaved 32-key tiles
 * of the cache, merge their softmax partials, and each multiplies the head's output
 * by its eighth of attn.c_proj's rows for this head's inputs. The per-head products
 * go to headPartials [heads, E] (fp32, no bias); the next kernel (HEADS input) and the
 * mlp.c_proj RESIDUAL output (headPartials set) add them into the residual. With a
 * LAYERNORM input it reads *position and the cached keys before its programmatic wait,
 * so its predecessor must not be the kernel that advanced the position (the argmax);
 * EMBED (the first layer) reads them after. */
typedef struct {
  WbDecodeLinearParams qkv;  /* input LAYERNORM, EMBED or (int4) HEADS, output QKV (y unused), weight c_attn, caches, position,
                                capacity, heads, headDim (64), programmaticLaunch, sharedCarveout, lnTwoPass */
  WbDecodeWeight proj;       /* attn.c_proj [E, E] (bias unused: added by the consumers) */
  float* headPartials;       /* [heads, E]; accumulate: [E], zero on entry */
  int accumulate;            /* nonzero: add every head's products into one row with fp32 atomics (the
                                consumers then read one row, not `heads`; the sum's order, and so its
                                last bits, varies between runs) */
  float scale;               /* applied to q.k */
} WbDecodeAttentionBlockParams;

/* ln_2 + c_fc + GELU + mlp.c_proj of one layer in one launch, int4 groups of 128 on tensor
 * cores, E = 1024 (GPT-2 medium) and inner a multiple of 32. Each block owns 32 hidden
 * units: the residual plus the previous kernel's sum (HEADS input), LayerNorm, its 32 c_fc
 * rows and GELU, then those units' slice of mlp.c_proj for every output, added into
 * `accumulate` with fp32 vector atomics; the consumer (the next attention block or the LM
 * head, HEADS input over the copies, the c_proj bias as headBias) adds that sum into the
 * residual. So a layer with an accumulating attention block takes 2 launches. */
/* Copies of an MLP block's sum: block b adds into copy b % WB_DECODE_MLP_SUMS, so that
 * each address takes that fraction of the blocks' atomics (those on one address serialise
 * in L2: docs/PERF.md, "One launch for the MLP"); consumers add the copies. */
#define WB_DECODE_MLP_SUMS 4

typedef struct {
  WbDecodeLinearParams fc;  /* input HEADS (x, headPartials, headBias, headCount; residual: where block 0
                               stores x + the heads), weight c_fc [inner, E], LayerNorm, programmaticLaunch,
                               sharedCarveout, lnTwoPass; output and y unused */
  WbDecodeWeight proj;      /* mlp.c_proj [E, inner], same group size (bias unused: the consumer adds it) */
  float* accumulate;        /* fp32 [WB_DECODE_MLP_SUMS, E], zero on entry: c_proj's products over the hidden
                               units, summed over the copies (the consumer's headPartials, headCount the copies) */
  float* clearSums;         /* fp32 [WB_DECODE_MLP_SUMS, E] or NULL, and */
  float* clearHeads;        /* fp32 [E] or NULL: zeroed after the programmatic wait, for their next accumulation
                               (an earlier MLP block's sum and attention block's, both consumed by now) */
  WbDecodeRowTiles fcTiles; /* codes set: c_fc in row tiles (the layout of the LM head's), each of a block's two
                               tiles split over four warps by quarters of K; fc.weight's codes, scales and zeros
                               are then not read (its group size is). blocksPerSm unused */
} WbDecodeMlpBlockParams;

int wbDecodeMlpBlockSupported(int embd, int inner, int groupSize);
WbStatus wbDecodeMlpBlock(const WbDecodeMlpBlockParams* params, cudaStream_t stream);

/* Whether wbDecodeAttentionBlock can run on the current device (thread block clusters)
 * for a model of `heads` heads of dim 64 and a cache of `capacity` slots. */
int wbDecodeAttentionBlockSupported(int heads, int capacity);
/* The shared memory (dynamic and static) one block of the attention block takes for a
 * model `embd` wide and a cache of `capacity` slots, or -1 (bad shapes, no device). The
 * MLP-block step sizes its carveout by it: two such blocks must fit in the split, or with
 * one block an SM only 15 of GPT-2 medium's 16 clusters are placed at once (docs/PERF.md,
 * "Local q, shared memory and the carveout" and "Where the attention block's clusters land"). */
long long wbDecodeAttentionBlockSharedBytes(int embd, int capacity, int int4);
WbStatus wbDecodeAttentionBlock(const WbDecodeAttentionBlockParams* params, cudaStream_t stream);

/* Keys per attention split, and the number of splits a cache of `capacity` needs. */
int wbDecodeAttentionSplitKeys(void);
int wbDecodeAttentionSplits(int capacity);

WbStatus wbDecodeLinear(const WbDecodeLinearParams* params, cudaStream_t stream);
WbStatus wbDecodeAttention(const WbDecodeAttentionParams* params, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
