// `benchmark`: sweeps batch size x sequence length x attention backend over the run's
// current model (in the run's dtype, weights as earlier stages left them) and writes
// bench/<stage>.md, .csv and .json into the run directory. Backends this build lacks
// (sdpa before LibTorch 2) are skipped with a warning rather than failing the run.
#include <algorithm>

#include "core/bench/benchmark.h"
#include "core/bench/stats.h"
#include "core/io/atomic_file.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"

namespace wb {
namespace {

class BenchmarkStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    checkDtypeSupported(st.dtype, st.device);
    Gpt2 model = copyModel(st.model(), st.dtype, st.device);
    const auto& p = ctx.spec().params;
    SweepOptions o;
    o.batchSizes = p.at("batch_sizes").get<std::vector<int64_t>>();
    o.seqLens = p.at("seq_lens").get<std::vector<int64_t>>();
    o.backends.clear();
    const auto available = availableBackends(st.device);
    for (const auto& name : p.at("backends").get<std::vector<std::string>>()) {
      const auto b = parseAttentionBackend(name, "/stages/" + std::to_string(ctx.index()) + "/backends");
      if (std::find(available.begin(), available.end(), b) == available.end()) {
        ctx.log(name + " attention is not available in this build on " + st.device.str() + "; skipped",
                LogLevel::Warning);
        continue;
      }
      o.backends.push_back(b);
    }
    o.decodeTokens = ctx.integer("decode_tokens");
    o.warmup = ctx.integer("warmup");
    o.repeats = ctx.integer("repeats");
    o.weights = st.weightsLabel;
    o.seed = ctx.profile().seed;
    const auto points = runSweep(model, o, &ctx.cancel(), [&](int64_t done, int64_t total) {
      ctx.progress(done, total, 0.0, "points");
    });
    int64_t i = 0;
    for (const auto& pt : points) {
      for (const auto& m : pt.metrics)
        ctx.sample("bench/" + pt.backend + "/b" + std::to_string(pt.batch) + "/t" + std::to_string(pt.seqLen) + "/" +
                       m.name,
                   i, summarize(m.samples).mean);
      ++i;
    }
    const auto meta = benchMeta(model, o, ctx.profile().model.source);
    const auto dir = ctx.runDir() / "bench";
    std::filesystem::create_directories(dir);
    const auto md = benchMarkdown(meta, points);
    writeFileAtomic(dir / (ctx.spec().name + ".md"), md);
    writeFileAtomic(dir / (ctx.spec().name + ".csv"), benchCsv(meta, points));
    writeFileAtomic(dir / (ctx.spec().name + ".json"), benchJson(meta, points).dump(2));
    ctx.log(md);
  }
};

}  // namespace

StageType benchmarkStageType() {
  SectionSpec s{
      "benchmark",
      "Prefill / decode latency, throughput and memory over batch x seq_len x attention backend",
      {{"batch_sizes", FieldKind::IntList, nlohmann::json::array({1}), "Batch sizes", 1, 65536},
       {"seq_lens", FieldKind::IntList, nlohmann::json::array({64}), "Prompt lengths (prefill)", 1, 1 << 20},
       {"backends", FieldKind::StringList, nlohmann::json::array({"math", "flash"}), "Attention backends", {}, {},
        {"math", "flash", "sdpa"}},
       {"decode_tokens", FieldKind::Int, 16, "Decode steps after the prefill (KV cache)", 0, 1 << 20},
       {"warmup", FieldKind::Int, 1, "Untimed runs per point", 0, 1000},
       {"repeats", FieldKind::Int, 5, "Timed runs per point", 1, 100000}}};
  return {s, [] { return std::make_unique<BenchmarkStage>(); }};
}

}  // namespace wb
