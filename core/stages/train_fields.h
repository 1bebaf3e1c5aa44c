// The training-loop fields shared by the stages that train (distill, lora): one
// defaults table fragment and its reading into TrainOptions, so the same key means the
// same thing in every stage. Not here: each stage's own fields.
#pragma once

#include <vector>

#include "core/run/schema.h"
#include "core/train/trainer.h"

namespace wb {

class StageContext;

struct LoopDefaults {
  int64_t steps = 200;
  double lr = 6e-4, minLr = 6e-5;
  int64_t warmupSteps = 20;
  double weightDecay = 0.1;
};

// steps, batch_size, grad_accum, lr, min_lr, warmup_steps, weight_decay, beta1, beta2,
// grad_clip, eval_every, eval_windows, timing_warmup — as the train stage spells them.
std::vector<FieldSpec> loopFields(const LoopDefaults& defaults);
// Reads loopFields() back; seq_len comes from data.seq_len, the seed from the profile's
// seed and the stage index (as train does).
TrainOptions loopOptions(const StageContext& ctx);

}  // namespace wb
