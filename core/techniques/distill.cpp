// Distillation loss, frozen teacher and student factory; see distill.h.
#include "core/techniques/distill.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"

namespace wb {

KdLoss distillationLoss(const torch::Tensor& studentLogits, const torch::Tensor& teacherLogits,
                        const torch::Tensor& targets, const KdOptions& o) {
  if (!(o.temperature > 0)) throw InputError("distill", "temperature must be > 0");
  if (studentLogits.sizes() != teacherLogits.sizes())
    throw RunError("distill", "student logits " + c10::str(studentLogits.sizes()) +
                                  " and teacher logits " + c10::str(teacherLogits.sizes()) +
                                  " differ in shape",
                   "teacher and student need the same vocabulary");
  const int64_t vocab = studentLogits.size(-1);
  const auto zs = studentLogits.reshape({-1, vocab}).to(torch::kFloat32);
  const auto zt = teacherLogits.reshape({-1, vocab}).to(torch::kFloat32).detach();
  const auto logPs = torch::log_softmax(zs / o.temperature, -1);
  const auto logPt = torch::log_softmax(zt / o.temperature, -1);
  // KL(p_t || p_s) per position, averaged over positions ("batchmean" over B*T rows).
  const auto kl = (logPt.exp() * (logPt - logPs)).sum(-1).mean();
  KdLoss r;
  r.kd = kl * (o.temperature * o.temperature);
  r.ce = torch::nn::functional::cross_entropy(zs, targets.reshape({-1}));
  r.total = o.alpha * r.kd + (1.0 - o.alpha) * r.ce;
  return r;
}

torch::Tensor hiddenCosineLoss(const torch::Tensor& hs, const torch::Tensor& ht) {
  if (hs.sizes() != ht.sizes())
    throw RunError("distill", "student hidden states " + c10::str(hs.sizes()) + " and teacher's " +
                                  c10::str(ht.sizes()) + " differ in shape");
  const int64_t width = hs.size(-1);
  const auto cos = torch::nn::functional::cosine_similarity(
      hs.reshape({-1, width}).to(torch::kFloat32), ht.reshape({-1, width}).to(torch::kFloat32).detach(),
      torch::nn::functional::CosineSimilarityFuncOptions().dim(1).eps(1e-8));
  return (1.0 - cos).mean();
}

FrozenTeacher::FrozenTeacher(Gpt2 teacher) : teacher_(std::move(teacher)) {
  wasTraining_ = teacher_->is_training();
  for (auto& p : teacher_->parameters()) {
    flags_.push_back(p.requires_grad());
    p.set_requires_grad(false);
  }
  teacher_->eval();
}

FrozenTeacher::~FrozenTeacher() {
  auto params = teacher_->parameters();
  for (size_t i = 0; i < params.size() && i < flags_.size(); ++i) params[i].set_requires_grad(flags_[i]);
  teacher_->train(wasTraining_);
}

torch::Tensor FrozenTeacher::logits(const torch::Tensor& ids) {
  torch::NoGradGuard noGrad;
  return teacher_->forward(ids);
}

std::pair<torch::Tensor, torch::Tensor> FrozenTeacher::hiddenAndLogits(const torch::Tensor& ids) {
  torch::NoGradGuard noGrad;
  auto h = teacher_->hidden(ids);
  auto z = teacher_->logitsFromHidden(h);
  return {h, z};
}

LossFn distillationObjective(FrozenTeacher& teacher, const KdOptions& options) {
  return [&teacher, options](const torch::Tensor& logits, const torch::Tensor& x,
                             const torch::Tensor& y) {
    const KdLoss l = distillationLoss(logits, teacher.logits(x), y, options);
    return LossParts{l.total, {{"kd_loss", l.kd.detach()}, {"ce_loss", l.ce.detach()}}};
  };
}

TrainHooks distillationHooks(Gpt2 student, FrozenTeacher& teacher, const KdOptions& options) {
  TrainHooks hooks;
  if (!(options.hiddenWeight > 0)) {
    hooks.loss = distillationObjective(teacher, options);
    return hooks;
  }
  const int64_t ws = student->config().nEmbd, wt = teacher.model()->config().nEmbd;
  if (ws != wt)
    throw InputError("distill/hidden_weight", "the cosine term needs equal widths; student n_embd " +
                                                  std::to_string(ws) + ", teacher " + std::to_string(wt),
                     "set hidden_weight to 0 or use a student of the teacher's width");
  // The forward hook keeps the student's hidden states for the loss hook of the same
  // micro-batch (Trainer calls them in that order).
  auto stash = std::make_shared<torch::Tensor>();
  hooks.forward = [student, stash](const torch::Tensor& x) mutable {
    *stash = student->hidden(x);
    return student->logitsFromHidden(*stash);
  };
  hooks.loss = [&teacher, options, stash](const torch::Tensor& logits, const torch::Tensor& x,
                                          const torch::Tensor& y) {
    const auto [ht, zt] = teacher.hiddenAndLogits(x);
    KdLoss l = distillationLoss(logits, zt, y, options);
    l.hidden = hiddenCosineLoss(*stash, ht);
    *stash = torch::Tensor();  // the graph is held by the loss from here on
    const auto total = l.total + options.hiddenWeight * l.hidden;
    return LossParts{total,
                     {{"kd_loss", l.kd.detach()}, {"ce_loss", l.ce.detach()}, {"cos_loss", l.hidden.detach()}}};
  };
  return hooks;
}

StudentInit parseStudentInit(const std::string& name, const std::string& where) {
  if (name == "every_other") return StudentInit::EveryOther;
  if (name == "random") return StudentInit::Random;
  throw InputError(where, "unknown student init \"" + name + "\" (every_other, random)");
}

std::vector<int64_t> studentLayerMap(int64_t teacherLayers, int64_t studentLayers) {
  std::vector<int64_t> map;
  for (int64_t i = 0; i < studentLayers; ++i)
    map.push_back(std::min<int64_t>(teacherLayers - 1, (i * teacherLayers + studentLayers / 2) / studentLayers));
  return map;
}

Gpt2 makeStudent(Gpt2& teacher, const StudentOptions& o) {
  Gpt2Config c = teacher->config();
  const int64_t lt = c.nLayer;
  const int64_t ls = o.nLayer > 0 ? o.nLayer : std::max<int64_t>(1, lt / 2);
  if (ls > lt)
    throw InputError("distill/student_layers", "the student asks for " + std::to_string(ls) +
                                                   " layers but the teacher has " + std::to_string(lt),
                     "a student is smaller than its teacher; use 0 for half");
  c.nLayer = ls;
  Gpt2 student(c);
  student->setAttentionBackend(teacher->attentionBackend());
  const auto device = teacher->parameters().front().device();
  student->to(device, torch::kFloat32);
  if (o.init == StudentInit::Random) return student;

  const auto map = studentLayerMap(lt, ls);
  const auto src = teacher->named_parameters();
  torch::NoGradGuard noGrad;
  const std::string prefix = "transformer.h.";
  for (auto& item : student->named_parameters()) {
    std::string name = item.key();
    if (name.starts_with(prefix)) {
      const size_t dot = name.find('.', prefix.size());
      const int64_t i = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
      name = prefix + std::to_string(map[static_cast<size_t>(i)]) + name.substr(dot);
    }
    const torch::Tensor* t = src.find(name);
    if (!t) throw RunError("distill", "teacher has no parameter " + name);
    item.value().copy_(*t);
  }
  return student;
}

}  // namespace wb
