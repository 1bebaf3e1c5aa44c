// Knowledge distillation: the loss α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1−α)·CE,
// a frozen teacher, and the student factory (fewer layers, optionally initialised from
// evenly spaced teacher layers as DistilGPT2 was). The loop itself is Trainer's, fed
// through TrainHooks; an optional cosine term pulls the student's final hidden states
// towards the teacher's (DistilBERT's L_cos). Not here: the stage wiring, intermediate-
// layer or attention-map losses.
#pragma once

#include <string>

#include "core/model/gpt2.h"
#include "core/train/trainer.h"

namespace wb {

struct KdOptions {
  double temperature = 2.0;  // T > 0
  double alpha = 0.5;        // weight of the KD term; 1 - alpha weighs the CE term
  double hiddenWeight = 0.0;  // weight of the hidden-state cosine term (0: off)
};

struct KdLoss {
  torch::Tensor total, kd, ce;  // scalars; kd is already scaled by T^2 (not by alpha)
  torch::Tensor hidden;         // cosine term before its weight; undefined when off
};

// studentLogits and teacherLogits [B, T, V] at the same positions (position i predicts
// targets[:, i], the next token); targets [B, T] int64. Computed in fp32; KL and CE are
// means over the B*T positions. Teacher logits are treated as constants.
KdLoss distillationLoss(const torch::Tensor& studentLogits, const torch::Tensor& teacherLogits,
                        const torch::Tensor& targets, const KdOptions& options);

// Mean over positions of 1 - cos(h_s, h_t), hidden states [B, T, C] of equal width,
// in fp32; teacher states are treated as constants. 0 when the directions agree.
torch::Tensor hiddenCosineLoss(const torch::Tensor& studentHidden, const torch::Tensor& teacherHidden);

// Puts the teacher in eval mode with requires_grad off on every parameter, and restores
// the previous flags when destroyed (the run may keep the teacher for later stages).
class FrozenTeacher {
 public:
  explicit FrozenTeacher(Gpt2 teacher);
  ~FrozenTeacher();
  FrozenTeacher(const FrozenTeacher&) = delete;
  FrozenTeacher& operator=(const FrozenTeacher&) = delete;
  // Teacher logits for ids under NoGradGuard.
  torch::Tensor logits(const torch::Tensor& ids);
  // Final hidden states (after ln_f) and logits, under NoGradGuard.
  std::pair<torch::Tensor, torch::Tensor> hiddenAndLogits(const torch::Tensor& ids);
  Gpt2& model() { return teacher_; }

 private:
  Gpt2 teacher_;
  std::vector<bool> flags_;
  bool wasTraining_;
};

// A Trainer loss hook: teacher logits for each batch, then distillationLoss; reports
// the parts "kd_loss" and "ce_loss". The teacher must outlive the hook.
LossFn distillationObjective(FrozenTeacher& teacher, const KdOptions& options);

// The hooks for Trainer: with hiddenWeight > 0 the student's forward keeps its final
// hidden states for the cosine term (reported as "cos_loss"), otherwise just
// distillationObjective. InputError when the cosine term is asked for but the widths
// differ. Teacher and student must outlive the hooks.
TrainHooks distillationHooks(Gpt2 student, FrozenTeacher& teacher, const KdOptions& options);

enum class StudentInit { EveryOther, Random };
StudentInit parseStudentInit(const std::string& name, const std::string& where);

struct StudentOptions {
  int64_t nLayer = 0;  // 0: half the teacher's layers (at least 1)
  StudentInit init = StudentInit::EveryOther;
};

// Teacher layer copied into student layer i: round(i * L_t / L_s), i.e. 0, 2, 4, ... for
// half the layers.
std::vector<int64_t> studentLayerMap(int64_t teacherLayers, int64_t studentLayers);

// The teacher's config with n_layer changed, fresh weights from the global torch RNG;
// with EveryOther, embeddings, ln_f (and an untied lm_head) and the mapped blocks are
// copied from the teacher. On the teacher's device, fp32. InputError when nLayer exceeds
// the teacher's.
Gpt2 makeStudent(Gpt2& teacher, const StudentOptions& options);

}  // namespace wb
