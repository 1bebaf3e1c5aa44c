/* Softmax cross-entropy over rows of 16-bit logits, in place: for each row r of a
 * [rows, ld] fp16/bf16 matrix whose first `vocab` columns are logits,
 *   rowLoss[r] = valid[r] * (logsumexp(row[:vocab]) - row[target[r]])
 * and, with writeGrad, the row is overwritten by softmax(row[:vocab]) - valid[r] *
 * onehot(target[r]) (columns >= vocab set to 0), all in fp32 before the one rounding.
 * The training loss of core/train/fused_lm_loss.h calls it on each chunk of LM-head
 * logits: one read and one write of the chunk instead of an fp32 copy, log-softmax,
 * exp and the casts between them. One block per row stages the row in shared memory,
 * so ld must be a multiple of 8 (16-byte loads) and at most 65536.
 * The CPU reference is softmaxXentReference in core/train/softmax_xent.h. */
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/wb_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { WB_SOFTMAX_XENT_MAX_COLUMNS = 65536 };

typedef struct {
  void* logits;            /* [rows, ld], contiguous rows, 16-byte aligned; in: logits, out: gradient */
  const int64_t* targets;  /* [rows], in [0, vocab); a row with an out-of-range target gets a NaN loss */
  const float* valid;      /* [rows] weight of each row's one-hot and loss (1 or 0 for ignored rows) */
  float* rowLoss;          /* [rows] out */
  int rows, vocab, ld;
  int writeGrad;           /* 0: loss only, the logits are left as they were */
  WbDtype dtype;
} WbSoftmaxXentParams;

WbStatus wbSoftmaxXent(const WbSoftmaxXentParams* params, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
