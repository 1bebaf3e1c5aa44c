// One batch-1 GPT-2 decode step through the fused kernels of kernels/decode: per block
// LayerNorm + c_attn GEMV that writes k/v into the static KV cache, split single-query
// attention, combine + attn.c_proj + residual, LayerNorm + c_fc + GELU, mlp.c_proj +
// residual; then ln_f + LM head + argmax, which also feeds the token back and advances
// the cache's device-side position (5 L + 1 launches, no host synchronisation; 3 L + 1
// with the attention block, FusedDecodeOptions::attentionBlock; 2 L + 1 with the MLP block
// too, FusedDecodeOptions::mlpBlock), so the
// step captures into a CUDA graph (core/model/graph_decode.h); or, optionally, all of
// that in one persistent cooperative kernel with grid barriers between the phases.
// Weights are prepared once: fp16 rows [out, in] or the int4 layout of
// core/techniques/quantize.h.
// Not here: prefill (the ordinary forward fills the cache), sampling, batches > 1.
#pragma once

#include <memory>

#include "core/model/gpt2.h"
#include "core/techniques/quantize.h"

namespace wb {

struct FusedDecodeOptions {
  bool int4 = false;        // Conv1D weights as int4 groups (quantizeWeight), not fp16
  bool int4LmHead = false;  // the LM head as well (the embedding lookup keeps fp16 wte)
  int64_t groupSize = 128;  // int4: 32, 64 or 128
  bool symmetric = true;
  // int4: already packed weights (quantizeModel's, e.g. from the quantize stage) used by
  // parameter name; any other weight is quantized here with the spec above.
  std::vector<QuantizedWeight> packed;
  bool programmaticLaunch = true;  // overlap each kernel's weight reads with its predecessor
  // The shared-memory carveout every kernel of the step asks for, percent of the largest
  // (kernels/decode/decode_launch.h): 1..100, 0 no request, -1 the one measured fastest
  // on H100 for the weight format and kernels (docs/PERF.md, sections "Block shape,
  // carveout and one-pass LayerNorm" and "Local q, shared memory and the carveout").
  int sharedCarveout = -1;
  // fp16 GEMVs behind a LayerNorm (ln_1 + c_attn, with the embedding in the first layer;
  // ln_2 + c_fc; ln_f + LM head) fold it into their epilogue: rstd * (x.(W diag(gamma)) -
  // mean * W.gamma) + W.beta + bias, with the row sums precomputed here in fp32, so the
  // products start without waiting for the statistics (the normalised x is then not
  // rounded to fp16 as the eager path rounds it). Measured faster on H100 (docs/PERF.md,
  // "The LayerNorm folded into the GEMV"); false normalises x in the kernel first.
  bool layerNormFolded = true;
  // Unfolded LayerNorm kernels (int4 weights, or layerNormFolded off) reduce x in two
  // passes over shared memory (LibTorch's order) instead of one pass over per-thread sums
  // of x and x^2, the faster default on H100 (docs/PERF.md, "Block shape, carveout and
  // one-pass LayerNorm"); kept to compare the two.
  bool layerNormTwoPass = false;
  // Per layer, ln_1 + c_attn + attention + attn.c_proj as one launch of thread block
  // clusters (wbDecodeAttentionBlock), so a layer takes 3 launches instead of 5; the
  // per-head c_proj partials are added by the ln_2 + c_fc and mlp.c_proj kernels. Where
  // the device has no clusters (before sm_90) or the shapes exceed the kernel's, the 5 L + 1
  // kernels run instead (attentionBlockActive() says which).
  bool attentionBlock = false;
  // With attentionBlock: the clusters add their heads' c_proj products into one fp32
  // vector with atomics (the consumers read one vector instead of one per head), at the
  // price of a summation order, and so last bits, that vary between runs.
  bool attentionBlockAtomic = false;
  // int4 GEMVs with groups of 128 and K a multiple of 1024 (the LM head too) run their
  // products on tensor cores (mma.sync, fp32 accumulation; WbDecodeLinearParams::int4Mma)
  // instead of half2 dequantize-multiply-add. Measured faster on H100 (docs/PERF.md,
  // "int4 products on tensor cores"); false keeps the half2 path, to compare.
  bool int4TensorCores = true;
  // With the atomic attention block, int4 groups of 128 on tensor cores and E = 1024 (GPT-2
  // medium): ln_2 + c_fc + GELU + mlp.c_proj as one launch (wbDecodeMlpBlock) whose blocks
  // each add their hidden units' share of every output into fp32 sums, which the next
  // layer's attention block (or ln_f + the LM head) adds to the residual: 2 L + 1 launches.
  // Measured faster on H100 (docs/PERF.md, "One launch for the MLP"); where it does not
  // apply the two MLP kernels run (mlpBlockActive() says which).
  bool mlpBlock = true;
  // An int4 LM head with groups of 128 and E of 768, 1024 or 1280, per-phase launches:
  // 1..3 runs it as tiles of 16 rows a tensor-core mma (WbDecodeRowTiles, the head repacked
  // here once by core/model/int4_row_tiles.h) with that many blocks an SM, where the
  // tensor-core GEMV takes 4 rows a warp and sums a diagonal over the warp; 0 keeps that
  // one (lmHeadTilesActive() says which ran). Three blocks an SM measured fastest on H200:
  // the head 10.6 against 14.6 us alone, the step 3.2 us shorter (docs/PERF.md, "The LM
  // head in row tiles").
  int lmHeadRowTiles = 3;
  // With the MLP blocks: c_fc in row tiles as well (each block's 32 units are two tiles, a
  // tile split over four warps by quarters of K; WbDecodeMlpBlockParams::fcTiles), the
  // layers' c_fc repacked here once; false keeps 4 rows a warp in the diagonal layout.
  // docs/PERF.md, "The LM head in row tiles".
  bool mlpFcRowTiles = true;
  // The LM head's argmax through one 64-bit key that every block raises with an atomic max
  // (WbDecodeLinearParams::argmaxBest), so the last block reads one key instead of reducing
  // every block's candidate: the same token and logits, 0.8-1.3 us a token sooner with the
  // row tiles on H200 (same section).
  bool argmaxPacked = true;
  // The whole step as one persistent cooperative kernel with grid barriers between the
  // phases (kernels/decode/decode_persistent.h); where the device or the shapes cannot
  // take it, the 5 L + 1 kernels above run instead (persistentActive() says which).
  bool persistent = false;
};

bool fusedDecodeBuilt();

class FusedDecoder {
 public:
  // `model`: fp16 weights on CUDA, every layer with all its heads of dim 64, no adapters,
  // a tanh GELU. `capacity`: the static cache's (the attention split count follows it).
  FusedDecoder(Gpt2 model, int64_t capacity, const FusedDecodeOptions& options = {});
  ~FusedDecoder();
  FusedDecoder(const FusedDecoder&) = delete;
  FusedDecoder& operator=(const FusedDecoder&) = delete;

  // One token on the current stream: reads ids [1, 1] (int64) and cache.position,
  // writes this position's k/v, the logits, ids = argmax, out[position + 1] = argmax
  // (out: int64 [capacity]) and position + 1.
  void step(KvCache& cache, torch::Tensor& ids, torch::Tensor& out);
  // The last step's logits, fp16 [vocab] (the buffer itself: copy it before the next step).
  const torch::Tensor& logits() const;
  // Bytes of weights one step reads (GEMV weights, scales, biases, LayerNorms).
  int64_t weightBytes() const;
  // Whether step() runs the persistent kernel (asked for, and this device and model take it).
  bool persistentActive() const;
  // Whether step() runs the attention-block kernels (asked for, not persistent, and this
  // device and model take them).
  bool attentionBlockActive() const;
  // Whether step() runs the MLP blocks (asked for, with the attention blocks, and the
  // weights and shapes take them).
  bool mlpBlockActive() const;
  // Whether step() runs the row-tile LM head (asked for, per-phase launches, and the head's
  // format and width take it).
  bool lmHeadTilesActive() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wb
