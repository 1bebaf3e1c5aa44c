// `lora`: fine-tunes the run's current model through LoRA adapters (only A and B train;
// the shared Trainer loop), saves the adapter in peft's format in the run directory and
// optionally merges it; `full_finetune` trains every weight instead as the baseline.
// Reports trainable parameters and the memory breakdown: weights, gradients and
// optimizer state (counted) and activations (measured on the first step's forward).
#include <nlohmann/json.hpp>

#include "core/bench/alloc_tracker.h"
#include "core/bench/memory_probe.h"
#include "core/errors.h"
#include "core/io/hf_checkpoint.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"
#include "core/stages/train_fields.h"
#include "core/techniques/lora.h"

namespace wb {
namespace {

class LoraStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    if (st.dtype != torch::kFloat32)
      throw InputError("/device/dtype", "LoRA fine-tuning runs in fp32 in this build",
                       "set device.dtype to fp32 (mixed precision comes with the GPU work)");
    Gpt2& model = st.model();
    const TokenFile& train = st.trainTokens();
    const TokenFile& val = st.valTokens();
    const auto vocab = static_cast<int32_t>(model->config().vocabSize);
    if (train.size() < 100'000'000) train.checkIds(vocab);
    if (val.size() < 100'000'000) val.checkIds(vocab);

    TrainOptions o = loopOptions(ctx);
    const bool full = ctx.flag("full_finetune");
    torch::manual_seed(o.seed);
    std::unique_ptr<LoraModel> lora;
    TrainHooks hooks;
    NamedTensors trainable;
    if (full) {
      trainable = trainableParameters(*model);
    } else {
      LoraOptions lo;
      lo.rank = ctx.integer("rank");
      lo.alpha = ctx.number("alpha");
      lo.dropout = ctx.number("dropout");
      lo.targets = ctx.spec().params.at("targets").get<std::vector<std::string>>();
      lora = std::make_unique<LoraModel>(model, lo);
      trainable = hooks.parameters = lora->parameters();
    }
    int64_t trainableCount = 0;
    for (const auto& [name, t] : trainable) trainableCount += t.numel();
    const TrainingMemory mem = trainingMemory(*model, trainable, lora ? lora->parameters() : NamedTensors{});
    const int64_t total = model->parameterCount() + (lora ? trainableCount : 0);
    ctx.sample("lora/trainable_params", 0, static_cast<double>(trainableCount));
    ctx.sample("lora/total_params", 0, static_cast<double>(total));
    ctx.sample("lora/trainable_percent", 0, 100.0 * static_cast<double>(trainableCount) / static_cast<double>(total));
    ctx.sample("mem/weights_mb", 0, static_cast<double>(mem.weights) / kBytesPerMb);
    ctx.sample("mem/gradients_mb", 0, static_cast<double>(mem.gradients) / kBytesPerMb);
    ctx.sample("mem/optimizer_state_mb", 0, static_cast<double>(mem.optimizerState) / kBytesPerMb);
    ctx.log(std::string(full ? "full fine-tune" : "LoRA") + ": " + std::to_string(trainableCount) + " of " +
            std::to_string(total) + " parameters train; weights " + std::to_string(mem.weights / kBytesPerMb) +
            " MB, gradients " + std::to_string(mem.gradients / kBytesPerMb) + " MB, optimizer state " +
            std::to_string(mem.optimizerState / kBytesPerMb) + " MB");

    // The first forward's retained allocations: what autograd keeps for backward plus
    // the logits, measured where the loop runs (no extra pass).
    auto activations = std::make_shared<int64_t>(-1);
    hooks.forward = [m = model, activations](const torch::Tensor& x) mutable {
      if (*activations >= 0) return m->forward(x);
      torch::Tensor logits;
      *activations = measureAllocations(x.device(), [&] { logits = m->forward(x); }).retainedBytes;
      return logits;
    };
    Trainer trainer(model, o, {train.data(), static_cast<int64_t>(train.size()), train.path().string()},
                    {val.data(), static_cast<int64_t>(val.size()), val.path().string()}, hooks);
    TrainSink sink;
    sink.sample = [&](const std::string& s, int64_t step, double v) { ctx.sample(s, step, v); };
    sink.log = [&](const std::string& text) { ctx.log(text); };
    sink.progress = [&](int64_t step, int64_t n, double tps) { ctx.progress(step, n, tps, "tok/s"); };
    trainer.run(sink, ctx.cancel());
    // Measured after the first step created the moments; equals mem.optimizerState.
    ctx.sample("mem/optimizer_state_measured_mb", 0, static_cast<double>(trainer.optimizer().stateBytes()) / kBytesPerMb);
    ctx.sample("mem/activations_mb", 0, static_cast<double>(*activations) / kBytesPerMb);
    ctx.log(std::string("memory breakdown (") + (full ? "full fine-tune" : "LoRA") + ", batch " +
            std::to_string(o.batchSize) + " x " + std::to_string(o.seqLen) + "): weights " +
            std::to_string(mem.weights / kBytesPerMb) + " MB, gradients " + std::to_string(mem.gradients / kBytesPerMb) +
            " MB, optimizer state " + std::to_string(mem.optimizerState / kBytesPerMb) + " MB, activations " +
            std::to_string(static_cast<double>(*activations) / kBytesPerMb) + " MB (kept for backward, logits included)");

    if (lora) {
      if (ctx.flag("save_adapter")) {
        const auto dir = ctx.runDir() / "adapters" / ctx.spec().name;
        lora->save(dir, ctx.profile().model.source == "config" ? std::string() : ctx.profile().model.source);
        ctx.log("adapter saved to " + dir.string() + " (peft format)");
      }
      if (ctx.flag("merge")) {
        lora->merge();
        lora->detach();
        ctx.log("adapter merged into the weights");
      } else {
        ctx.log("adapter left attached (not merged): later stages see base + adapter");
      }
      lora.reset();  // restores the base weights' requires_grad
    }
    if (ctx.flag("save_model") && (full || ctx.flag("merge"))) {
      const auto dir = ctx.runDir() / "models" / ctx.spec().name;
      saveHfCheckpoint(*model, model->config().toJson(), dir);
      ctx.log("model saved to " + dir.string());
    }
  }
};

}  // namespace

StageType loraStageType() {
  std::vector<FieldSpec> f = {
      {"rank", FieldKind::Int, 8, "LoRA rank r", 1, 4096},
      {"alpha", FieldKind::Number, 16.0, "LoRA alpha (the update is scaled by alpha / r)", 0.0, 1e6},
      {"dropout", FieldKind::Number, 0.0, "Dropout on the adapter's input while training", 0.0, 0.99},
      {"targets", FieldKind::StringList, nlohmann::json::array({"c_attn"}),
       "Conv1D modules that get adapters (peft's suffix rule: c_proj means both)", {}, {},
       {"c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj", "c_proj", "c_fc"}},
      {"merge", FieldKind::Bool, true, "Merge the adapter into the weights at the end"},
      {"full_finetune", FieldKind::Bool, false, "Train every weight instead (the baseline)"},
      {"save_adapter", FieldKind::Bool, true, "Save the adapter (peft format) in the run"},
      {"save_model", FieldKind::Bool, false, "Save the merged or fully fine-tuned model as a HF folder"}};
  LoopDefaults d;
  d.steps = 100;
  d.lr = 1e-3;
  d.minLr = 1e-4;
  d.warmupSteps = 10;
  d.weightDecay = 0.0;
  for (auto& field : loopFields(d)) f.push_back(field);
  SectionSpec s{"lora", "Fine-tune the current model with LoRA adapters (or fully, as the baseline)",
                std::move(f)};
  return {s, [] { return std::make_unique<LoraStage>(); }};
}

}  // namespace wb
