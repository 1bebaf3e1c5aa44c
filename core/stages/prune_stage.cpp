// `prune`: magnitude (per tensor or global), N:M or attention-head pruning of the run's
// model, optionally followed by fine-tuning with the masks re-applied after every step.
// Reports the sparsity achieved and, separately, the speed-up measured by timing a
// forward pass before and after (unstructured zeros usually give none), plus the loss
// change against the unpruned model. Writes prune/<stage>.json into the run directory.
#include <cmath>

#include "core/bench/benchmark.h"
#include "core/bench/model_compare.h"
#include "core/bench/stats.h"
#include "core/errors.h"
#include "core/io/atomic_file.h"
#include "core/io/hf_checkpoint.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"
#include "core/techniques/prune.h"
#include "core/train/trainer.h"

namespace wb {
namespace {

class PruneStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    Gpt2& model = st.model();
    const auto modules = ctx.spec().params.at("modules").get<std::vector<std::string>>();
    const std::string method = ctx.text("method");
    const int64_t batch = ctx.integer("timing_batch");
    const int64_t seqLen = std::min(ctx.profile().data.seqLen, model->config().nPositions);
    const int64_t repeats = ctx.integer("timing_repeats");

    Gpt2 before = copyModel(model, torch::kFloat32, st.device);
    const auto tBefore = summarize(timeForward(model, batch, seqLen, 1, repeats));
    const int64_t paramsBefore = model->parameterCount();

    PruneMasks masks;
    if (method == "magnitude") {
      const auto scope = ctx.text("scope") == "global" ? PruneScope::Global : PruneScope::PerTensor;
      masks = magnitudePrune(model, modules, ctx.number("sparsity"), scope);
    } else if (method == "nm") {
      masks = nmPrune(model, modules, ctx.integer("n"), ctx.integer("m"));
    } else {
      const auto heads = leastImportantHeads(model, ctx.integer("heads_per_layer"));
      removeHeads(model, heads);
      std::string text = "removed heads per layer:";
      for (size_t l = 0; l < heads.size(); ++l) {
        text += " [";
        for (size_t i = 0; i < heads[l].size(); ++i) text += (i ? "," : "") + std::to_string(heads[l][i]);
        text += "]";
      }
      ctx.log(text);
    }

    const int64_t steps = ctx.integer("finetune_steps");
    if (steps > 0) finetune(ctx, model, masks, steps);

    const auto tAfter = summarize(timeForward(model, batch, seqLen, 1, repeats));
    const auto report = sparsityReport(model, modules);
    const double sparsity = report.back().sparsity();
    const TokenFile& val = st.valTokens();
    const auto cmp = compareModels(before, model, val.data(), static_cast<int64_t>(val.size()), seqLen,
                                   ctx.integer("eval_batch_size"), ctx.integer("eval_windows"), &ctx.cancel());

    ctx.sample("prune/sparsity", 0, sparsity);
    ctx.sample("prune/parameters_before", 0, static_cast<double>(paramsBefore));
    ctx.sample("prune/parameters_after", 0, static_cast<double>(model->parameterCount()));
    ctx.sample("prune/forward_ms_before", 0, 1e3 * tBefore.mean);
    ctx.sample("prune/forward_ms_after", 0, 1e3 * tAfter.mean);
    ctx.sample("prune/speedup", 0, tBefore.mean / tAfter.mean);
    ctx.sample("prune/val_loss_before", 0, cmp.baseLoss);
    ctx.sample("prune/val_loss_after", 0, cmp.otherLoss);
    ctx.sample("prune/kl", 0, cmp.kl);
    for (const auto& r : report) ctx.log(r.name + ": " + std::to_string(r.zeros) + " / " + std::to_string(r.numel) +
                                         " zeros (" + std::to_string(100.0 * r.sparsity()) + " %)");
    ctx.log("sparsity achieved " + std::to_string(100.0 * sparsity) + " % of the selected weights; speed-up achieved " +
            std::to_string(tBefore.mean / tAfter.mean) + "x (forward [" + std::to_string(batch) + ", " +
            std::to_string(seqLen) + "]: " + std::to_string(1e3 * tBefore.mean) + " ± " +
            std::to_string(1e3 * tBefore.std) + " ms -> " + std::to_string(1e3 * tAfter.mean) + " ± " +
            std::to_string(1e3 * tAfter.std) + " ms); val loss " + std::to_string(cmp.baseLoss) + " -> " +
            std::to_string(cmp.otherLoss));

    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : report)
      rows.push_back({{"name", r.name}, {"numel", r.numel}, {"zeros", r.zeros}, {"sparsity", r.sparsity()}});
    const nlohmann::json out{
        {"method", method},
        {"params", ctx.spec().params},
        {"sparsity_achieved", sparsity},
        {"per_tensor", rows},
        {"parameters_before", paramsBefore},
        {"parameters_after", model->parameterCount()},
        {"forward_seconds_before", {{"n", tBefore.n}, {"mean", tBefore.mean}, {"std", tBefore.std}}},
        {"forward_seconds_after", {{"n", tAfter.n}, {"mean", tAfter.mean}, {"std", tAfter.std}}},
        {"speedup_achieved", tBefore.mean / tAfter.mean},
        {"val_loss_before", cmp.baseLoss},
        {"val_loss_after", cmp.otherLoss},
        {"kl", cmp.kl},
        {"eval_tokens", cmp.tokens}};
    const auto dir = ctx.runDir() / "prune";
    std::filesystem::create_directories(dir);
    writeFileAtomic(dir / (ctx.spec().name + ".json"), out.dump(2));
    // A head-pruned model no longer matches config.n_head, so no HF folder is written.
    if (ctx.flag("save_model") && method != "heads") {
      const auto mdir = ctx.runDir() / "models" / ctx.spec().name;
      saveHfCheckpoint(*model, model->config().toJson(), mdir);
      ctx.log("model saved to " + mdir.string());
    }
  }

 private:
  static void finetune(StageContext& ctx, Gpt2& model, const PruneMasks& masks, int64_t steps) {
    RunState& st = ctx.state();
    const TokenFile& train = st.trainTokens();
    const TokenFile& val = st.valTokens();
    TrainOptions o;
    o.steps = steps;
    o.batchSize = ctx.integer("batch_size");
    o.seqLen = ctx.profile().data.seqLen;
    o.lr = ctx.number("lr");
    o.minLr = ctx.number("lr") / 10.0;
    o.warmupSteps = std::min<int64_t>(steps / 10, 20);
    o.evalEvery = 0;
    o.evalWindows = ctx.integer("eval_windows");
    o.seed = ctx.profile().seed + static_cast<uint64_t>(ctx.index());
    // Pruned weights would otherwise grow back from their gradients and momentum.
    if (!masks.empty()) o.afterStep = [&masks](int64_t) { masks.apply(); };
    Trainer trainer(model, o, {train.data(), static_cast<int64_t>(train.size()), train.path().string()},
                    {val.data(), static_cast<int64_t>(val.size()), val.path().string()});
    TrainSink sink;
    sink.sample = [&](const std::string& s, int64_t step, double v) { ctx.sample("finetune/" + s, step, v); };
    sink.log = [&](const std::string& text) { ctx.log(text); };
    sink.progress = [&](int64_t step, int64_t total, double tps) { ctx.progress(step, total, tps, "tok/s"); };
    trainer.run(sink, ctx.cancel());
  }
};

}  // namespace

StageType pruneStageType() {
  SectionSpec s{
      "prune",
      "Prune the current model (magnitude, N:M or attention heads), optionally fine-tune with the masks kept",
      {{"method", FieldKind::String, "magnitude", "What to prune", {}, {}, {"magnitude", "nm", "heads"}},
       {"sparsity", FieldKind::Number, 0.5, "magnitude: fraction of weights zeroed", 0.0, 0.99},
       {"scope", FieldKind::String, "layer", "magnitude: rank per tensor or over all selected", {}, {},
        {"layer", "global"}},
       {"modules", FieldKind::StringList, nlohmann::json::array({"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}),
        "Weights to prune (magnitude, nm)", {}, {}, {"c_attn", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}},
       {"n", FieldKind::Int, 2, "nm: weights kept per group", 1, 64},
       {"m", FieldKind::Int, 4, "nm: group size along the input dimension", 1, 64},
       {"heads_per_layer", FieldKind::Int, 1, "heads: least important heads removed from every layer", 0, 1024},
       {"finetune_steps", FieldKind::Int, 0, "Fine-tuning steps after pruning (0: none)", 0, 1e9},
       {"lr", FieldKind::Number, 3e-4, "Fine-tuning peak learning rate", 0.0, 10.0},
       {"batch_size", FieldKind::Int, 8, "Fine-tuning sequences per step", 1, 65536},
       {"eval_windows", FieldKind::Int, 20, "Validation windows for the loss / KL comparison (0: all)", 0, 1e9},
       {"eval_batch_size", FieldKind::Int, 8, "Windows per forward pass in the comparison", 1, 65536},
       {"timing_batch", FieldKind::Int, 1, "Batch of the timed forward pass (length data.seq_len)", 1, 65536},
       {"timing_repeats", FieldKind::Int, 5, "Timed forward passes before and after (after 1 warm-up)", 1, 1000},
       {"save_model", FieldKind::Bool, false, "Save the pruned model as a HF folder (not for heads)"}}};
  return {s, [] { return std::make_unique<PruneStage>(); }};
}

}  // namespace wb
