// `generate`: continues a prompt with the current model (greedy or sampled, with or
// without the KV cache), logs the text, appends it to generations.jsonl in the run
// directory, and reports prefill and per-token decode latency.
#include <fstream>

#include "core/io/tokenizer.h"
#include "core/model/generate.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"

namespace wb {
namespace {

class GenerateStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    checkDtypeSupported(st.dtype, st.device);
    Gpt2 model = st.dtype == torch::kFloat32 ? st.model() : copyModel(st.model(), st.dtype, st.device);
    auto tok = st.tokenizer();
    const std::string prompt = ctx.text("prompt");
    const auto ids32 = tok->encode(prompt);
    std::vector<int64_t> ids(ids32.begin(), ids32.end());
    GenerateOptions o;
    o.maxNewTokens = ctx.integer("max_new_tokens");
    o.temperature = ctx.number("temperature");
    o.topK = ctx.integer("top_k");
    o.topP = ctx.number("top_p");
    o.useKvCache = ctx.flag("kv_cache");
    o.stopToken = ctx.flag("stop_at_eot") ? tok->eotId() : -1;
    const int64_t samples = ctx.integer("samples");
    std::ofstream out(ctx.runDir() / "generations.jsonl", std::ios::app);
    for (int64_t i = 0; i < samples; ++i) {
      ctx.cancel().throwIfCancelled();
      o.seed = ctx.profile().seed + static_cast<uint64_t>(i);
      const GenerateResult r = generate(model, ids, o);
      std::vector<int32_t> newIds(r.tokens.begin(), r.tokens.end());
      const std::string text = tok->decode(newIds);
      ctx.log("sample " + std::to_string(i + 1) + ": " + prompt + text);
      ctx.sample("gen/prefill_s", i, r.prefillSeconds);
      double decodeTotal = 0.0;
      for (size_t k = 0; k < r.decodeSeconds.size(); ++k) {
        ctx.sample("gen/decode_token_s", static_cast<int64_t>(k + 1), r.decodeSeconds[k]);
        decodeTotal += r.decodeSeconds[k];
      }
      if (decodeTotal > 0)
        ctx.sample("gen/decode_tokens_per_s", i, static_cast<double>(r.decodeSeconds.size()) / decodeTotal);
      out << nlohmann::json{{"stage", ctx.spec().name}, {"sample", i}, {"seed", o.seed},
                            {"prompt", prompt}, {"prompt_ids", ids}, {"ids", r.tokens},
                            {"text", text}}.dump()
          << "\n";
      out.flush();
      ctx.progress(i + 1, samples, 0.0, "samples");
    }
  }
};

}  // namespace

StageType generateStageType() {
  SectionSpec s{"generate",
                "Continue a prompt with the current model",
                {{"prompt", FieldKind::String, "Call me Ishmael.", "Text to continue"},
                 {"max_new_tokens", FieldKind::Int, 64, "Tokens to generate", 1, 1 << 20},
                 {"temperature", FieldKind::Number, 0.8, "Sampling temperature (0: greedy)", 0.0, 100.0},
                 {"top_k", FieldKind::Int, 40, "Keep the k most likely tokens (0: off)", 0, 1 << 20},
                 {"top_p", FieldKind::Number, 1.0, "Nucleus sampling mass (1: off)", 1e-6, 1.0},
                 {"kv_cache", FieldKind::Bool, true, "Reuse keys/values of earlier tokens"},
                 {"samples", FieldKind::Int, 1, "Independent continuations", 1, 10000},
                 {"stop_at_eot", FieldKind::Bool, true, "Stop at <|endoftext|>"}}};
  return {s, [] { return std::make_unique<GenerateStage>(); }};
}

}  // namespace wb
