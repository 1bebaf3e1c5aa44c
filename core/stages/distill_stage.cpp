// `distill`: trains a student to match a frozen teacher (the run's current model or a
// `teacher` source) with the KD loss of core/techniques/distill.h, through the shared
// Trainer loop, by steps or by epochs (evaluating each epoch, checkpoints at chosen
// epochs); optionally trains a same-size student from scratch on the same batches as
// the baseline. The student becomes the run's current model; teacher, student and
// baseline are kept for the `compare` stage. Not here: the comparison table itself.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/bench/evaluator.h"
#include "core/errors.h"
#include "core/io/hf_checkpoint.h"
#include "core/io/model_catalog.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"
#include "core/stages/train_fields.h"
#include "core/techniques/distill.h"

namespace wb {
namespace {

Gpt2 loadSource(const std::string& source, const torch::Device& device) {
  Gpt2 m = loadModelFolder(resolveModelSource(source));
  m->to(device);
  return m;
}

TrainSink sinkFor(StageContext& ctx, const std::string& prefix) {
  TrainSink sink;
  sink.sample = [&ctx, prefix](const std::string& s, int64_t step, double v) { ctx.sample(prefix + s, step, v); };
  sink.log = [&ctx, prefix](const std::string& text) { ctx.log(prefix + text); };
  sink.progress = [&ctx](int64_t step, int64_t total, double tps) { ctx.progress(step, total, tps, "tok/s"); };
  return sink;
}

class DistillStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    if (st.dtype != torch::kFloat32)
      throw InputError("/device/dtype", "distillation trains in fp32 in this build",
                       "set device.dtype to fp32 (mixed precision comes with the GPU work)");
    const std::string teacherSource = ctx.text("teacher");
    Gpt2 teacher = teacherSource.empty() ? st.model() : loadSource(teacherSource, st.device);
    const TokenFile& train = st.trainTokens();
    const TokenFile& val = st.valTokens();
    const auto vocab = static_cast<int32_t>(teacher->config().vocabSize);
    if (train.size() < 100'000'000) train.checkIds(vocab);
    if (val.size() < 100'000'000) val.checkIds(vocab);
    const TokenSpan trainSpan{train.data(), static_cast<int64_t>(train.size()), train.path().string()};
    const TokenSpan valSpan{val.data(), static_cast<int64_t>(val.size()), val.path().string()};

    TrainOptions o = loopOptions(ctx);
    o.checkpointEvery = ctx.integer("checkpoint_every");
    o.keepCheckpoints = static_cast<int>(ctx.integer("keep_checkpoints"));
    KdOptions kd;
    kd.temperature = ctx.number("temperature");
    kd.alpha = ctx.number("alpha");
    kd.hiddenWeight = ctx.number("hidden_weight");
    const std::string where = "/stages/" + std::to_string(ctx.index());
    const int64_t epochs = ctx.integer("epochs");
    const auto ckptEpochs = ctx.spec().params.at("checkpoint_epochs").get<std::vector<int64_t>>();
    int64_t stepsPerEpoch = 0;
    std::function<void(int64_t)> epochMarker;  // train/epoch samples when training by epochs
    if (epochs > 0) {
      // One epoch = as many windows as the training tokens hold, unless set.
      stepsPerEpoch = ctx.integer("steps_per_epoch");
      if (stepsPerEpoch == 0)
        stepsPerEpoch = std::max<int64_t>(1, trainSpan.count / (o.batchSize * o.gradAccum * o.seqLen));
      o.steps = epochs * stepsPerEpoch;
      o.evalEvery = stepsPerEpoch;
      for (int64_t e : ckptEpochs) {
        if (e > epochs)
          throw InputError(where + "/checkpoint_epochs", "epoch " + std::to_string(e) + " is past the last (" +
                                                             std::to_string(epochs) + ")");
        o.checkpointSteps.push_back(e * stepsPerEpoch);
      }
      if (!ckptEpochs.empty()) o.keepCheckpoints = 0;  // the chosen epochs are all kept
      epochMarker = [&ctx, stepsPerEpoch](int64_t step) {
        if (step % stepsPerEpoch == 0)
          ctx.sample("train/epoch", step, static_cast<double>(step / stepsPerEpoch));
      };
      ctx.log(std::to_string(epochs) + " epochs of " + std::to_string(stepsPerEpoch) + " steps (" +
              std::to_string(o.steps) + " steps), evaluating each epoch");
    } else if (!ckptEpochs.empty()) {
      throw InputError(where + "/checkpoint_epochs", "checkpoints by epoch need epochs > 0",
                       "set epochs, or use checkpoint_every (steps)");
    }

    FrozenTeacher frozen(teacher);
    EvalOptions eo;
    eo.seqLen = o.seqLen;
    eo.batchSize = o.evalBatchSize;
    eo.maxWindows = o.evalWindows;
    const EvalResult teacherEval = evaluate(teacher, valSpan.data, valSpan.count, eo, &ctx.cancel());
    ctx.sample("distill/teacher_val_loss", 0, teacherEval.loss);

    torch::manual_seed(o.seed);
    Gpt2 student{nullptr};
    const std::string studentSource = ctx.text("student");
    if (studentSource.empty()) {
      StudentOptions so;
      so.nLayer = ctx.integer("student_layers");
      so.init = parseStudentInit(ctx.text("student_init"), where + "/student_init");
      student = makeStudent(teacher, so);
    } else {
      student = loadSource(studentSource, st.device);
      if (student->config().vocabSize != teacher->config().vocabSize)
        throw InputError(where + "/student",
                         "student vocabulary " + std::to_string(student->config().vocabSize) +
                             " differs from the teacher's " + std::to_string(teacher->config().vocabSize));
    }
    ctx.sample("distill/teacher_params", 0, static_cast<double>(teacher->parameterCount()));
    ctx.sample("distill/student_params", 0, static_cast<double>(student->parameterCount()));
    ctx.sample("distill/teacher_layers", 0, static_cast<double>(teacher->config().nLayer));
    ctx.sample("distill/student_layers", 0, static_cast<double>(student->config().nLayer));
    ctx.log("teacher " + std::to_string(teacher->config().nLayer) + " layers, " +
            std::to_string(teacher->parameterCount()) + " parameters (val loss " +
            std::to_string(teacherEval.loss) + "); student " + std::to_string(student->config().nLayer) +
            " layers, " + std::to_string(student->parameterCount()) + " parameters; T = " +
            std::to_string(kd.temperature) + ", alpha = " + std::to_string(kd.alpha) +
            (kd.hiddenWeight > 0 ? ", hidden cosine weight " + std::to_string(kd.hiddenWeight) : ""));

    TrainHooks hooks = distillationHooks(student, frozen, kd);
    hooks.afterStep = epochMarker;
    Trainer trainer(student, o, trainSpan, valSpan, std::move(hooks));
    trainer.run(sinkFor(ctx, ""), ctx.cancel(), ctx.runDir() / "checkpoints" / ctx.spec().name);
    const double studentLoss = trainer.lastEval()->loss;
    ctx.sample("distill/student_val_loss", 0, studentLoss);

    const std::string name = ctx.spec().name;
    st.keepModel("distill/teacher", teacher, name);
    // A copy: the student stays the current model, which later stages change in place.
    st.keepModel("distill/student", copyModel(student, torch::kFloat32, st.device), name);
    if (ctx.flag("baseline")) {
      // Same config, fresh weights, same batches (same sampler seed), same steps, plain CE.
      torch::manual_seed(o.seed + 1);
      Gpt2 baseline(student->config());
      baseline->setAttentionBackend(student->attentionBackend());
      baseline->to(st.device);
      Trainer bt(baseline, o, trainSpan, valSpan);
      bt.run(sinkFor(ctx, "baseline/"), ctx.cancel());
      const double baselineLoss = bt.lastEval()->loss;
      ctx.sample("distill/baseline_val_loss", 0, baselineLoss);
      st.keepModel("distill/baseline", baseline, name);
      ctx.log("val loss after " + std::to_string(o.steps) + " steps: distilled student " +
              std::to_string(studentLoss) + ", student from scratch " + std::to_string(baselineLoss) +
              ", teacher " + std::to_string(teacherEval.loss));
    }
    if (ctx.flag("save_model")) {
      const auto dir = ctx.runDir() / "models" / ctx.spec().name;
      saveHfCheckpoint(*student, student->config().toJson(), dir);
      ctx.log("student saved to " + dir.string());
    }
    st.setModel(student);
  }
};

}  // namespace

StageType distillStageType() {
  std::vector<FieldSpec> f = {
      {"teacher", FieldKind::String, "", "Teacher: \"hf:NAME\" or a folder (empty: the run's current model)"},
      {"student", FieldKind::String, "", "Student: \"hf:NAME\" or a folder (empty: built from the teacher)"},
      {"student_layers", FieldKind::Int, 0, "Student layers (0: half the teacher's)", 0, 1000},
      {"student_init", FieldKind::String, "every_other", "Student weights: teacher layers 0, 2, 4, ... or random",
       {}, {}, {"every_other", "random"}},
      {"temperature", FieldKind::Number, 2.0, "Softmax temperature T of the KD term", 1e-3, 1e3},
      {"alpha", FieldKind::Number, 0.5, "Weight of the KD term (1 - alpha weighs the CE term)", 0.0, 1.0},
      {"hidden_weight", FieldKind::Number, 0.0,
       "Weight of the hidden-state cosine term, 1 - cos(h_student, h_teacher) (0: off)", 0.0, 1e3},
      {"baseline", FieldKind::Bool, false, "Also train a same-size student from scratch on the same batches"},
      {"epochs", FieldKind::Int, 0, "Train for N epochs, evaluating after each (0: train for `steps`)", 0, 1e6},
      {"steps_per_epoch", FieldKind::Int, 0, "Steps in one epoch (0: one pass over the training tokens)", 0, 1e9},
      {"checkpoint_epochs", FieldKind::IntList, nlohmann::json::array(),
       "Checkpoint after these epochs, all kept (e.g. 5, 10, ..., 50)", 1, 1e6},
      {"checkpoint_every", FieldKind::Int, 0, "Checkpoint every N steps (0: never)", 0, 1e9},
      {"keep_checkpoints", FieldKind::Int, 2, "Newest checkpoints kept (0: all)", 0, 1000},
      {"save_model", FieldKind::Bool, true, "Save the student as a HF folder in the run"}};
  for (auto& field : loopFields({})) f.push_back(field);
  SectionSpec s{"distill", "Distil the current model (or a teacher source) into a smaller student",
                std::move(f)};
  return {s, [] { return std::make_unique<DistillStage>(); }};
}

}  // namespace wb
