// `benchmark`: sweeps weight format x batch size x sequence length x attention backend
// over the run's current model (formats: core/bench/weight_formats.h; "current" is the
// model as earlier stages left it, in the run's dtype) and writes bench/<stage>.md,
// .csv and .json into the run directory. Backends or formats this build or device
// lacks (sdpa before LibTorch 2, fp16 on some CPUs) are skipped with a warning.
#include <algorithm>

#include "core/bench/benchmark.h"
#include "core/bench/stats.h"
#include "core/bench/weight_formats.h"
#include "core/errors.h"
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
    const auto& p = ctx.spec().params;
    const std::string pointer = "/stages/" + std::to_string(ctx.index());
    SweepOptions o;
    o.batchSizes = p.at("batch_sizes").get<std::vector<int64_t>>();
    o.seqLens = p.at("seq_lens").get<std::vector<int64_t>>();
    o.backends.clear();
    const auto available = availableBackends(st.device);
    for (const auto& name : p.at("backends").get<std::vector<std::string>>()) {
      const auto b = parseAttentionBackend(name, pointer + "/backends");
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
    o.seed = ctx.profile().seed;

    const auto formats = p.at("weights").get<std::vector<std::string>>();
    const int64_t perFormat = static_cast<int64_t>(o.batchSizes.size() * o.seqLens.size() * o.backends.size());
    const int64_t total = perFormat * static_cast<int64_t>(formats.size());
    std::vector<BenchPoint> points;
    Gpt2 metaModel{nullptr};
    for (const auto& format : formats) {
      WeightVariant v;
      try {
        v = makeWeightVariant(st.model(), format, st.dtype, st.device, st.weightsLabel);
      } catch (const InputError& e) {
        ctx.log("weights " + format + " skipped: " + e.what(), LogLevel::Warning);
        continue;
      }
      o.weights = v.label;
      const int64_t offset = static_cast<int64_t>(points.size());
      auto part = runSweep(v.model, o, &ctx.cancel(), [&](int64_t done, int64_t) {
        ctx.progress(offset + done, total, 0.0, "points");
      });
      for (const auto& pt : part) {
        // Series names use the format's profile spelling ("int4-g128"), not the label.
        for (const auto& m : pt.metrics)
          ctx.sample("bench/" + format + "/" + pt.backend + "/b" + std::to_string(pt.batch) + "/t" +
                         std::to_string(pt.seqLen) + "/" + m.name,
                     static_cast<int64_t>(points.size()), summarize(m.samples).mean);
        points.push_back(pt);
      }
      if (metaModel.is_empty()) metaModel = v.model;
    }
    if (points.empty()) throw InputError(pointer + "/weights", "no weight format could run on " + st.device.str());
    Gpt2& model = metaModel;
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
      "Prefill / decode latency, throughput and memory over weights x batch x seq_len x attention backend",
      {{"batch_sizes", FieldKind::IntList, nlohmann::json::array({1}), "Batch sizes", 1, 65536},
       {"seq_lens", FieldKind::IntList, nlohmann::json::array({64}), "Prompt lengths (prefill)", 1, 1 << 20},
       {"backends", FieldKind::StringList, nlohmann::json::array({"math", "flash"}), "Attention backends", {}, {},
        {"math", "flash", "sdpa"}},
       {"weights", FieldKind::StringList, nlohmann::json::array({"current"}),
        "Weight formats: current (as earlier stages left the model), fp32, fp16, bf16, int8, int4-g32|64|128[-asym] "
        "(integer formats run through the dequantizing matmul)",
        {}, {}, benchWeightFormats()},
       {"decode_tokens", FieldKind::Int, 16, "Decode steps after the prefill (KV cache)", 0, 1 << 20},
       {"warmup", FieldKind::Int, 1, "Untimed runs per point", 0, 1000},
       {"repeats", FieldKind::Int, 5, "Timed runs per point", 1, 100000}}};
  return {s, [] { return std::make_unique<BenchmarkStage>(); }};
}

}  // namespace wb
