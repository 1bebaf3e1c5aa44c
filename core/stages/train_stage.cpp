// `train`: pretrains or continues the run's current model on the profile's token
// data, evaluating on the held-out split, checkpointing into the run directory and
// saving the final model there as a Hugging Face folder for later stages and tools.
#include "core/errors.h"
#include "core/io/hf_checkpoint.h"
#include "core/parallel/dist_env.h"
#include "core/parallel/nccl_transport.h"
#include "core/parallel/parallel_spec.h"
#include "core/parallel/pipeline_trainer.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"
#include "core/stages/train_fields.h"
#include "core/techniques/prune.h"
#include "core/train/checkpoint.h"
#include "core/train/trainer.h"

namespace wb {
namespace {

class TrainStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    if (st.dtype != torch::kFloat32)
      throw InputError(
          "/device/dtype", "training keeps fp32 master weights",
          "set device.dtype to fp32 and the train stage's \"precision\" to bf16 or fp16 "
          "for mixed precision");
    Gpt2& model = st.model();
    const TokenFile& train = st.trainTokens();
    const TokenFile& val = st.valTokens();
    if (train.size() < 100'000'000) train.checkIds(static_cast<int32_t>(model->config().vocabSize));
    if (val.size() < 100'000'000) val.checkIds(static_cast<int32_t>(model->config().vocabSize));

    TrainOptions o = loopOptions(ctx);
    o.checkpointEvery = ctx.integer("checkpoint_every");
    o.keepCheckpoints = static_cast<int>(ctx.integer("keep_checkpoints"));
    const std::string where = "/stages/" + std::to_string(ctx.index());
    o.precision = parsePrecision(ctx.text("precision"), where + "/precision");
    checkPrecisionSupported(o.precision, st.device, where + "/precision");
    o.adamw.fused = ctx.flag("fused_optimizer");
    if (o.adamw.fused && !compat::kHasFusedAdamW)
      throw InputError(
          where + "/fused_optimizer",
          "fused AdamW needs LibTorch >= 2.4 (this build has " + compat::torchVersion() + ")",
          "set \"fused_optimizer\": false");
    o.activationCheckpointing = ctx.flag("activation_checkpointing");
    o.fusedLmHeadLoss = ctx.flag("fused_lm_head_loss");
    TrainHooks hooks;
    if (st.pruneMasks) {
      // An earlier prune stage's zeros survive this training (its masks, re-applied).
      hooks.afterStep = [masks = st.pruneMasks](int64_t) { masks->apply(); };
      ctx.log("keeping the " + std::to_string(st.pruneMasks->size()) +
              " pruning masks of an earlier stage");
    }

    ctx.log("model: " + std::to_string(model->parameterCount()) + " parameters, " +
            std::to_string(model->config().nLayer) +
            " layers; data: " + std::to_string(train.size()) + " train / " +
            std::to_string(val.size()) + " val tokens");
    const ParallelSpec& par = ctx.profile().parallel;
    if (par.pipelined() || par.dataParallel > 1 || readDistEnv().distributed()) {
      runPipeline(ctx, model, o, train, val, std::move(hooks));
      return;
    }
    Trainer trainer(
        model, o, {train.data(), static_cast<int64_t>(train.size()), train.path().string()},
        {val.data(), static_cast<int64_t>(val.size()), val.path().string()}, std::move(hooks));
    const std::string resume = ctx.text("resume");
    if (!resume.empty()) {
      trainer.resumeFrom(resume);
      ctx.log("resumed from " + resume + " at step " + std::to_string(trainer.step()));
    }
    TrainSink sink;
    sink.sample = [&](const std::string& s, int64_t step, double v) { ctx.sample(s, step, v); };
    sink.log = [&](const std::string& text) { ctx.log(text); };
    sink.progress = [&](int64_t step, int64_t total, double tps) {
      ctx.progress(step, total, tps, "tok/s");
    };
    const auto ckptRoot = ctx.runDir() / "checkpoints" / ctx.spec().name;
    trainer.run(sink, ctx.cancel(), ckptRoot);
    if (ctx.flag("save_model")) {
      const auto dir = ctx.runDir() / "models" / ctx.spec().name;
      saveHfCheckpoint(*model, model->config().toJson(), dir);
      ctx.log("model saved to " + dir.string());
    }
  }

 private:
  // parallel.pipeline_stages > 1 or data_parallel > 1: one worker thread per rank,
  // in-process transport on the CPU, NCCL between GPUs; under torchrun this process
  // runs rank RANK only, on GPU LOCAL_RANK (the run command put it first in gpus).
  void runPipeline(StageContext& ctx, Gpt2& model, const TrainOptions& o, const TokenFile& train,
                   const TokenFile& val, TrainHooks hooks) {
    const ParallelSpec& par = ctx.profile().parallel;
    const std::string stagePtr = "/stages/" + std::to_string(ctx.index());
    checkParallelFitsModel(par, model->config().nLayer);
    checkParallelFitsBatch(par, o.batchSize, stagePtr + "/batch_size");
    if (o.activationCheckpointing)
      throw ProfileError({}, stagePtr + "/activation_checkpointing",
                         "with parallel stages use parallel.checkpoint (per stage) instead");
    if (o.fusedLmHeadLoss)
      throw ProfileError({}, stagePtr + "/fused_lm_head_loss",
                         "the fused LM-head loss is single-device only so far; set it to false with parallel");
    const DistEnv dist = readDistEnv();
    const int world = par.pipelineStages * par.dataParallel;
    const bool cuda = ctx.state().device.is_cuda();
    // The masks hold the model's own tensors on its device: data-parallel replicas are
    // copies they never reach (the replicas would silently drift apart), and stages
    // moved to other GPUs no longer match their device.
    if (ctx.state().pruneMasks && (par.dataParallel > 1 || (cuda && world > 1)))
      throw ProfileError({}, "/parallel",
                         "an earlier prune stage's masks cannot be kept through data-parallel or "
                         "multi-GPU training yet; fine-tune pruned models on one device "
                         "(parallel.data_parallel 1, one GPU)");
    if (dist.distributed()) {
      if (dist.worldSize != world)
        throw InputError("environment: WORLD_SIZE",
                         "WORLD_SIZE is " + std::to_string(dist.worldSize) +
                             " but parallel asks for " + std::to_string(par.pipelineStages) +
                             " stages x " + std::to_string(par.dataParallel) +
                             " replicas = " + std::to_string(world) + " ranks",
                         "launch with torchrun --nproc-per-node " + std::to_string(world));
      if (!cuda)
        throw InputError("/device/type", "a multi-process run needs CUDA devices (NCCL)",
                         "set device.type to cuda, or run without torchrun (threads on the CPU)");
      requireNccl("environment: WORLD_SIZE", "a multi-process run");
    }
    if (cuda && world > 1) requireNccl("/parallel", "training on several GPUs");
    PipelineOptions po;
    po.stages = par.pipelineStages;
    po.microBatches = par.microBatches;
    po.schedule = parseScheduleKind(par.schedule, "/parallel/schedule");
    po.balance = par.balance;
    po.checkpoint = par.checkpoint;
    po.dataParallel = par.dataParallel;
    po.precision = o.precision;
    if (cuda) {
      const auto& gpus = ctx.profile().device.gpus;
      for (int r = 0; r < world; ++r) {
        if (dist.distributed()) {
          po.devices.push_back(ctx.state().device);  // only this process's rank uses it
        } else {
          po.devices.emplace_back(torch::kCUDA,
                                  static_cast<c10::DeviceIndex>(gpus[static_cast<size_t>(r)]));
        }
      }
    }
    if (dist.distributed()) po.localRanks = {dist.rank};
#ifdef WB_HAVE_NCCL
    if (cuda && world > 1) {
      const auto timeout = std::chrono::seconds(300);
      po.comm = ncclCommFactory(
          dist.distributed() ? makeStoreRendezvous(dist, timeout) : makeInMemoryRendezvous(timeout),
          timeout);
    }
#endif
    PipelineTrainer trainer(
        model, o, po, {train.data(), static_cast<int64_t>(train.size()), train.path().string()},
        {val.data(), static_cast<int64_t>(val.size()), val.path().string()}, std::move(hooks));
    ctx.log("pipeline: " + std::to_string(po.stages) + " stages (" +
            describe(trainer.engine().plan()) + ") x " + std::to_string(po.dataParallel) +
            " replicas, " + std::to_string(po.microBatches) + " micro-batches, " +
            toString(po.schedule) + " schedule, " + trainer.engine().backendName() +
            (dist.distributed()
                 ? ", rank " + std::to_string(dist.rank) + " of " + std::to_string(dist.worldSize)
                 : "") +
            "; theoretical bubble " +
            std::to_string(theoreticalBubble(po.stages, po.microBatches)));
    TrainSink sink;
    sink.sample = [&](const std::string& s, int64_t step, double v) { ctx.sample(s, step, v); };
    sink.log = [&](const std::string& text) { ctx.log(text); };
    sink.progress = [&](int64_t step, int64_t total, double tps) {
      ctx.progress(step, total, tps, "tok/s");
    };
    const std::string resume = ctx.text("resume");
    if (!resume.empty()) {
      trainer.resumeFrom(resume);
      ctx.log("resumed from " + resume + " at step " + std::to_string(trainer.step()));
    }
    // Every rank takes part in a checkpoint (the stages' weights and moments are
    // gathered); the process holding rank 0 writes it into the run directory.
    trainer.run(sink, ctx.cancel(), ctx.runDir() / "checkpoints" / ctx.spec().name);
    // Under torchrun each process trained one stage: every rank takes part in copying
    // the others' weights into this process's model, then rank 0 saves it.
    if (ctx.flag("save_model") && dist.distributed() && po.stages > 1) trainer.engine().gatherModel(ctx.cancel());
    if (cuda) model->to(ctx.state().device);  // gather the stages back (this process's copy)
    if (ctx.flag("save_model") && dist.rank == 0) {
      const auto dir = ctx.runDir() / "models" / ctx.spec().name;
      saveHfCheckpoint(*model, model->config().toJson(), dir);
      ctx.log("model saved to " + dir.string());
    }
  }
};

}  // namespace

StageType trainStageType() {
  // The loop fields are shared with distill and lora (train_fields.h), so the same key
  // means the same thing in every stage; these are train's own.
  std::vector<FieldSpec> f = loopFields(LoopDefaults{});
  const std::vector<FieldSpec> own = {
      {"checkpoint_every", FieldKind::Int, 0, "Checkpoint every N steps (0: never)", 0, 1e9},
      {"keep_checkpoints", FieldKind::Int, 2, "Newest checkpoints kept (0: all)", 0, 1000},
      {"resume", FieldKind::String, "", "Checkpoint folder to continue from"},
      {"save_model", FieldKind::Bool, true, "Save the trained model as a HF folder in the run"},
      {"precision",
       FieldKind::String,
       "fp32",
       "Autocast precision over fp32 master weights (bf16/fp16 need CUDA)",
       std::nullopt,
       std::nullopt,
       {"fp32", "bf16", "fp16"}},
      {"fused_optimizer", FieldKind::Bool, false, "Fused AdamW kernel (LibTorch >= 2.4)"},
      {"activation_checkpointing", FieldKind::Bool, false,
       "Recompute each block in backward to save memory"},
      {"fused_lm_head_loss", FieldKind::Bool, false,
       "LM head + cross-entropy in row chunks: same loss, no full fp32 logits (less memory)"}};
  f.insert(f.end(), own.begin(), own.end());
  SectionSpec s{"train",
                "Train the current model on data.train (next-token loss), evaluating on data.val",
                std::move(f)};
  return {s, [] { return std::make_unique<TrainStage>(); }};
}

}  // namespace wb
