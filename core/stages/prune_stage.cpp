// `prune`: magnitude (per tensor, per output or global), Wanda (|W|·‖X‖ from calibration
// batches of the run's train data), N:M (by magnitude or Wanda score), or structured
// removal of attention heads / MLP neurons, optionally in `iterations` steps with the
// target ramped linearly and fine-tuning (masks re-applied after every step) in between.
// Reports "sparsity achieved" (per tensor, per layer, total) apart from "speed-up
// achieved" (forward latency before/after, n, mean ± std, raw samples) and the loss / KL
// change against the unpruned model. Writes prune/<stage>.json into the run directory.
#include <cmath>

#include "core/bench/benchmark.h"
#include "core/bench/model_compare.h"
#include "core/bench/stats.h"
#include "core/bench/stats_json.h"
#include "core/errors.h"
#include "core/io/atomic_file.h"
#include "core/io/hf_checkpoint.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"
#include "core/techniques/prune.h"
#include "core/techniques/prune_structured.h"
#include "core/techniques/prune_wanda.h"
#include "core/train/trainer.h"

namespace wb {
namespace {

std::string unitsText(const LayerUnits& units) {
  std::string text;
  for (size_t l = 0; l < units.size(); ++l) {
    text += " [";
    for (size_t i = 0; i < units[l].size(); ++i) text += (i ? "," : "") + std::to_string(units[l][i]);
    text += "]";
  }
  return text;
}

class PruneStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    Gpt2& model = st.model();
    const std::string method = ctx.text("method");
    const bool structured = method == "heads" || method == "neurons";
    const auto modules = structured ? (method == "heads" ? std::vector<std::string>{"attn.c_attn", "attn.c_proj"}
                                                         : std::vector<std::string>{"mlp.c_fc", "mlp.c_proj"})
                                    : ctx.spec().params.at("modules").get<std::vector<std::string>>();
    const int64_t iterations = ctx.integer("iterations");
    if ((method == "nm" || method == "wanda-nm") && iterations > 1)
      throw InputError("/stages/" + std::to_string(ctx.index()) + "/iterations",
                       "an N:M pattern has no sparsity ramp", "use iterations 1 with nm");
    const int64_t batch = ctx.integer("timing_batch");
    const int64_t seqLen = std::min(ctx.profile().data.seqLen, model->config().nPositions);
    const int64_t repeats = ctx.integer("timing_repeats");

    Gpt2 before = copyModel(model, torch::kFloat32, st.device);
    const auto tBefore = timeForward(model, batch, seqLen, 1, repeats);
    const int64_t paramsBefore = model->parameterCount();
    int64_t selectedBefore = 0;
    for (const auto& [name, w] : selectWeights(model, modules)) selectedBefore += w.numel();

    // Structured targets: the total to remove per layer by the last iteration.
    const auto& c = model->config();
    const int64_t headsTotal = method == "heads" ? ctx.integer("heads_per_layer") : 0;
    const int64_t neuronsTotal =
        method == "neurons" ? std::llround(ctx.number("neuron_fraction") * static_cast<double>(c.innerDim())) : 0;
    int64_t removedSoFar = 0;
    auto masks = std::make_shared<PruneMasks>();
    for (int64_t it = 1; it <= iterations; ++it) {
      const double frac = static_cast<double>(it) / static_cast<double>(iterations);
      if (method == "magnitude" || method == "wanda") {
        const double target = ctx.number("sparsity") * frac;
        const std::string scopeName = ctx.text("scope");
        const auto scope = scopeName == "global" ? PruneScope::Global
                           : scopeName == "output" ? PruneScope::PerOutput
                                                   : PruneScope::PerTensor;
        if (method == "wanda") {
          const auto scores = calibratedScores(ctx, model, modules);
          *masks = magnitudePrune(model, modules, target, scope, &scores);
        } else {
          *masks = magnitudePrune(model, modules, target, scope);
        }
        ctx.log("iteration " + std::to_string(it) + "/" + std::to_string(iterations) + ": target sparsity " +
                std::to_string(target));
      } else if (method == "nm") {
        *masks = nmPrune(model, modules, ctx.integer("n"), ctx.integer("m"));
      } else if (method == "wanda-nm") {
        const auto scores = calibratedScores(ctx, model, modules);
        *masks = nmPrune(model, modules, ctx.integer("n"), ctx.integer("m"), &scores);
      } else {
        const int64_t target = std::llround(static_cast<double>(method == "heads" ? headsTotal : neuronsTotal) * frac);
        const int64_t now = target - removedSoFar;
        if (now > 0) {
          const auto units = method == "heads" ? leastImportantHeads(model, now) : leastImportantNeurons(model, now);
          if (method == "heads") removeHeads(model, units); else removeNeurons(model, units);
          ctx.log("iteration " + std::to_string(it) + "/" + std::to_string(iterations) + ": removed " + method +
                  " per layer (indices among those left):" + unitsText(units));
        }
        removedSoFar = target;
      }
      const int64_t steps = ctx.integer("finetune_steps");
      if (steps > 0) finetune(ctx, model, *masks, steps, it);
      ctx.sample("prune/iteration_sparsity", it, sparsityReport(model, modules).back().sparsity());
    }

    const auto tAfter = timeForward(model, batch, seqLen, 1, repeats);
    const auto sBefore = summarize(tBefore), sAfter = summarize(tAfter);
    const auto report = sparsityReport(model, modules);
    const auto layers = layerSparsity(report);
    // Zeros plus removed entries over the selected weights as they were before: one
    // number for masks and for structural removal alike.
    const int64_t remainingNonzero = report.back().numel - report.back().zeros;
    const double sparsity = 1.0 - static_cast<double>(remainingNonzero) / static_cast<double>(selectedBefore);
    const TokenFile& val = st.valTokens();
    const auto cmp = compareModels(before, model, val.data(), static_cast<int64_t>(val.size()), seqLen,
                                   ctx.integer("eval_batch_size"), ctx.integer("eval_windows"), &ctx.cancel());
    // Later train stages keep these zeros; structural removal reshaped the weights, so
    // older masks no longer fit them.
    st.pruneMasks = masks->empty() ? nullptr : masks;

    const double speedup = sBefore.mean / sAfter.mean;
    ctx.sample("prune/sparsity", 0, sparsity);
    ctx.sample("prune/parameters_before", 0, static_cast<double>(paramsBefore));
    ctx.sample("prune/parameters_after", 0, static_cast<double>(model->parameterCount()));
    ctx.sample("prune/forward_ms_before", 0, 1e3 * sBefore.mean);
    ctx.sample("prune/forward_ms_after", 0, 1e3 * sAfter.mean);
    ctx.sample("prune/speedup", 0, speedup);
    ctx.sample("prune/val_loss_before", 0, cmp.baseLoss);
    ctx.sample("prune/val_loss_after", 0, cmp.otherLoss);
    ctx.sample("prune/kl", 0, cmp.kl);
    for (const auto& r : report)
      ctx.log(r.name + ": " + std::to_string(r.zeros) + " / " + std::to_string(r.numel) + " zeros (" +
              std::to_string(100.0 * r.sparsity()) + " %)");
    for (const auto& r : layers) ctx.log(r.name + ": " + std::to_string(100.0 * r.sparsity()) + " % zeros");
    ctx.log("sparsity achieved " + std::to_string(100.0 * sparsity) + " % of the selected weights (" +
            std::to_string(paramsBefore) + " -> " + std::to_string(model->parameterCount()) +
            " parameters); speed-up achieved " + std::to_string(speedup) + "x (forward [" + std::to_string(batch) +
            ", " + std::to_string(seqLen) + "], n = " + std::to_string(sBefore.n) + ": " +
            std::to_string(1e3 * sBefore.mean) + " ± " + std::to_string(1e3 * sBefore.std) + " ms -> " +
            std::to_string(1e3 * sAfter.mean) + " ± " + std::to_string(1e3 * sAfter.std) + " ms); val loss " +
            std::to_string(cmp.baseLoss) + " -> " + std::to_string(cmp.otherLoss));

    auto rowsJson = [](const std::vector<SparsityRow>& rows) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& r : rows)
        out.push_back({{"name", r.name}, {"numel", r.numel}, {"zeros", r.zeros}, {"sparsity", r.sparsity()}});
      return out;
    };
    nlohmann::json perLayerUnits = nlohmann::json::array();
    for (const auto& block : *model->transformer->h) {
      const auto b = block->as<Gpt2Block>();
      perLayerUnits.push_back({{"heads", b->attn->headCount()}, {"neurons", b->mlp->innerCount()}});
    }
    const nlohmann::json out{
        {"method", method},
        {"params", ctx.spec().params},
        {"sparsity_achieved", sparsity},
        {"per_tensor", rowsJson(report)},
        {"per_layer", rowsJson(layers)},
        {"per_layer_units", perLayerUnits},
        {"parameters_before", paramsBefore},
        {"parameters_after", model->parameterCount()},
        {"forward_shape", {batch, seqLen}},
        {"forward_seconds_before", samplesJson(tBefore)},
        {"forward_seconds_after", samplesJson(tAfter)},
        {"speedup_achieved", speedup},
        {"val_loss_before", cmp.baseLoss},
        {"val_loss_after", cmp.otherLoss},
        {"kl", cmp.kl},
        {"eval_tokens", cmp.tokens}};
    const auto dir = ctx.runDir() / "prune";
    std::filesystem::create_directories(dir);
    writeFileAtomic(dir / (ctx.spec().name + ".json"), out.dump(2));
    // Head-pruned layers have no HF config spelling (head_dim = n_embd / n_head), and
    // neither do neuron counts that differ between layers.
    bool uniform = true;
    for (const auto& block : *model->transformer->h) {
      const auto b = block->as<Gpt2Block>();
      uniform = uniform && b->attn->headCount() == c.nHead && b->mlp->innerCount() == model->config().innerDim();
    }
    if (ctx.flag("save_model")) {
      if (!uniform) {
        ctx.log("model not saved: its per-layer shapes have no Hugging Face config spelling", LogLevel::Warning);
      } else {
        const auto mdir = ctx.runDir() / "models" / ctx.spec().name;
        saveHfCheckpoint(*model, model->config().toJson(), mdir);
        ctx.log("model saved to " + mdir.string());
      }
    }
  }

 private:
  static WeightScores calibratedScores(StageContext& ctx, Gpt2& model, const std::vector<std::string>& modules) {
    const TokenFile& train = ctx.state().trainTokens();
    const int64_t seqLen = std::min(ctx.profile().data.seqLen, model->config().nPositions);
    const auto batches =
        calibrationBatches(train.data(), static_cast<int64_t>(train.size()), seqLen, ctx.integer("batch_size"),
                           ctx.integer("calibration_batches"), ctx.profile().seed + 7919 * (ctx.index() + 1));
    return wandaScores(model, modules, inputNorms(model, modules, batches));
  }

  static void finetune(StageContext& ctx, Gpt2& model, const PruneMasks& masks, int64_t steps, int64_t iteration) {
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
    o.seed = ctx.profile().seed + static_cast<uint64_t>(ctx.index()) + 1000 * static_cast<uint64_t>(iteration);
    // Pruned weights would otherwise grow back from their gradients and momentum.
    TrainHooks hooks;
    if (!masks.empty()) hooks.afterStep = [&masks](int64_t) { masks.apply(); };
    Trainer trainer(
        model, o, {train.data(), static_cast<int64_t>(train.size()), train.path().string()},
        {val.data(), static_cast<int64_t>(val.size()), val.path().string()}, std::move(hooks));
    TrainSink sink;
    const std::string prefix = iteration > 1 ? "finetune" + std::to_string(iteration) + "/" : "finetune/";
    sink.sample = [&](const std::string& s, int64_t step, double v) { ctx.sample(prefix + s, step, v); };
    sink.log = [&](const std::string& text) { ctx.log(text); };
    sink.progress = [&](int64_t step, int64_t total, double tps) { ctx.progress(step, total, tps, "tok/s"); };
    trainer.run(sink, ctx.cancel());
  }
};

}  // namespace

StageType pruneStageType() {
  SectionSpec s{
      "prune",
      "Prune the current model (magnitude, Wanda, N:M, attention heads or MLP neurons), optionally in iterations "
      "with fine-tuning between them and the masks kept",
      {{"method", FieldKind::String, "magnitude",
        "magnitude: smallest |w|; wanda: smallest |w|·‖x‖ (calibration batches of the train data); nm / wanda-nm: "
        "N:M pattern by |w| or |w|·‖x‖; heads / neurons: remove whole attention heads / MLP neurons (shrinks the "
        "matrices)",
        {}, {}, {"magnitude", "wanda", "nm", "wanda-nm", "heads", "neurons"}},
       {"sparsity", FieldKind::Number, 0.5, "magnitude, wanda: fraction of the selected weights zeroed", 0.0, 0.99},
       {"scope", FieldKind::String, "layer",
        "magnitude, wanda: rank per tensor (layer), per output channel (output; Wanda's choice) or over all selected "
        "(global)",
        {}, {}, {"layer", "output", "global"}},
       {"modules", FieldKind::StringList, nlohmann::json::array({"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}),
        "Weights to prune (magnitude, wanda, nm, wanda-nm)", {}, {},
        {"c_attn", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}},
       {"n", FieldKind::Int, 2, "nm, wanda-nm: weights kept per group", 1, 64},
       {"m", FieldKind::Int, 4, "nm, wanda-nm: group size along the input dimension", 1, 64},
       {"heads_per_layer", FieldKind::Int, 1, "heads: least important heads removed from every layer", 0, 1024},
       {"neuron_fraction", FieldKind::Number, 0.25, "neurons: fraction of every layer's MLP neurons removed", 0.0,
        0.99},
       {"calibration_batches", FieldKind::Int, 4, "wanda, wanda-nm: batches (batch_size x data.seq_len) for ‖x‖", 1,
        100000},
       {"iterations", FieldKind::Int, 1,
        "Prune in this many rounds, the target ramped linearly (round i reaches i/iterations of it), fine-tuning "
        "after each",
        1, 1000},
       {"finetune_steps", FieldKind::Int, 0, "Fine-tuning steps after each round (0: none)", 0, 1e9},
       {"lr", FieldKind::Number, 3e-4, "Fine-tuning peak learning rate", 0.0, 10.0},
       {"batch_size", FieldKind::Int, 8, "Fine-tuning (and calibration) sequences per step", 1, 65536},
       {"eval_windows", FieldKind::Int, 20, "Validation windows for the loss / KL comparison (0: all)", 0, 1e9},
       {"eval_batch_size", FieldKind::Int, 8, "Windows per forward pass in the comparison", 1, 65536},
       {"timing_batch", FieldKind::Int, 1, "Batch of the timed forward pass (length data.seq_len)", 1, 65536},
       {"timing_repeats", FieldKind::Int, 5, "Timed forward passes before and after (after 1 warm-up)", 1, 1000},
       {"save_model", FieldKind::Bool, false,
        "Save the pruned model as a HF folder (not when layers differ in shape, e.g. after head pruning)"}}};
  return {s, [] { return std::make_unique<PruneStage>(); }};
}

}  // namespace wb
