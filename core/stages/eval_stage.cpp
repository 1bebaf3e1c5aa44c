// `eval`: mean next-token loss and perplexity of the current model on the validation
// (or training) tokens, in the profile's compute dtype, with optional strided windows.
#include "core/bench/evaluator.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"

namespace wb {
namespace {

class EvalStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    checkDtypeSupported(st.dtype, st.device);
    Gpt2 model = st.dtype == torch::kFloat32 ? st.model() : copyModel(st.model(), st.dtype, st.device);
    const TokenFile& tokens = ctx.text("split") == "train" ? st.trainTokens() : st.valTokens();
    EvalOptions o;
    o.seqLen = ctx.integer("seq_len") > 0 ? ctx.integer("seq_len") : ctx.profile().data.seqLen;
    o.batchSize = ctx.integer("batch_size");
    o.maxWindows = ctx.integer("max_windows");
    o.stride = ctx.integer("stride");
    const EvalResult r = evaluate(model, tokens.data(), static_cast<int64_t>(tokens.size()), o,
                                  &ctx.cancel(), [&](int64_t done, int64_t total) {
                                    ctx.progress(done, total, 0.0, "windows");
                                  });
    ctx.sample("eval/loss", 0, r.loss);
    ctx.sample("eval/perplexity", 0, r.perplexity);
    ctx.sample("eval/tokens", 0, static_cast<double>(r.tokens));
    ctx.sample("eval/tokens_per_s", 0, static_cast<double>(r.tokens) / r.seconds);
    ctx.log(ctx.text("split") + " loss " + std::to_string(r.loss) + ", perplexity " +
            std::to_string(r.perplexity) + " over " + std::to_string(r.tokens) + " tokens (" +
            std::to_string(r.windows) + " windows)");
  }
};

}  // namespace

StageType evalStageType() {
  SectionSpec s{"eval",
                "Loss and perplexity of the current model on held-out tokens",
                {{"split", FieldKind::String, "val", "Which token file", {}, {}, {"val", "train"}},
                 {"batch_size", FieldKind::Int, 8, "Windows per forward pass", 1, 65536},
                 {"seq_len", FieldKind::Int, 0, "Window length (0: data.seq_len)", 0, 1 << 20},
                 {"max_windows", FieldKind::Int, 0, "Evaluate at most N windows (0: all)", 0, 1e12},
                 {"stride", FieldKind::Int, 0, "Sliding-window stride (0: non-overlapping)", 0,
                  1 << 20}}};
  return {s, [] { return std::make_unique<EvalStage>(); }};
}

}  // namespace wb
