// Shared training-loop fields; see train_fields.h.
#include "core/stages/train_fields.h"

#include "core/run/runner.h"

namespace wb {

std::vector<FieldSpec> loopFields(const LoopDefaults& d) {
  return {{"steps", FieldKind::Int, d.steps, "Optimizer steps", 1, 1e9},
          {"batch_size", FieldKind::Int, 8, "Sequences per micro-batch", 1, 65536},
          {"grad_accum", FieldKind::Int, 1, "Micro-batches per optimizer step", 1, 65536},
          {"lr", FieldKind::Number, d.lr, "Peak learning rate", 0.0, 10.0},
          {"min_lr", FieldKind::Number, d.minLr, "Learning rate at the end of the cosine decay", 0.0, 10.0},
          {"warmup_steps", FieldKind::Int, d.warmupSteps, "Linear warm-up steps", 0, 1e9},
          {"weight_decay", FieldKind::Number, d.weightDecay, "AdamW decay (2-D weights only)", 0.0, 10.0},
          {"beta1", FieldKind::Number, 0.9, "AdamW beta1", 0.0, 0.999999},
          {"beta2", FieldKind::Number, 0.95, "AdamW beta2", 0.0, 0.999999},
          {"grad_clip", FieldKind::Number, 1.0, "Clip the gradient norm (0: off)", 0.0, 1e6},
          {"eval_every", FieldKind::Int, 50, "Evaluate every N steps (0: only at the end)", 0, 1e9},
          {"eval_windows", FieldKind::Int, 100, "Validation windows per evaluation (0: all)", 0, 1e9},
          {"timing_warmup", FieldKind::Int, 2, "First steps left out of timing series", 0, 1000}};
}

TrainOptions loopOptions(const StageContext& ctx) {
  TrainOptions o;
  o.steps = ctx.integer("steps");
  o.batchSize = ctx.integer("batch_size");
  o.gradAccum = ctx.integer("grad_accum");
  o.seqLen = ctx.profile().data.seqLen;
  o.lr = ctx.number("lr");
  o.minLr = ctx.number("min_lr");
  o.warmupSteps = ctx.integer("warmup_steps");
  o.adamw.weightDecay = ctx.number("weight_decay");
  o.adamw.beta1 = ctx.number("beta1");
  o.adamw.beta2 = ctx.number("beta2");
  o.gradClip = ctx.number("grad_clip");
  o.evalEvery = ctx.integer("eval_every");
  o.evalWindows = ctx.integer("eval_windows");
  o.timingWarmup = ctx.integer("timing_warmup");
  o.checkpointEvery = 0;
  o.seed = ctx.profile().seed + static_cast<uint64_t>(ctx.index());
  return o;
}

}  // namespace wb
