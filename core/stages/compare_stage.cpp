// `compare`: the teacher, a same-size student trained from scratch with the same budget
// (the baseline) and the distilled student, measured the same way: validation loss and
// perplexity on the same tokens, parameters, bytes, forward latency (n, mean ± std after
// warm-up, device synchronised), throughput and peak memory, all in the run's dtype.
// Writes compare/<stage>.md and .json and one sample per model and metric (step = row)
// so the GUI plots them. Models come from the latest distill stage, or explicit sources.
#include <algorithm>

#include "core/bench/alloc_tracker.h"
#include "core/bench/benchmark.h"
#include "core/bench/bench_report.h"
#include "core/bench/compare_report.h"
#include "core/bench/evaluator.h"
#include "core/bench/memory_probe.h"
#include "core/bench/stats.h"
#include "core/errors.h"
#include "core/io/atomic_file.h"
#include "core/io/model_catalog.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"

namespace wb {
namespace {

struct Entry {
  std::string key, role;
  Gpt2 model{nullptr};
  std::string source;
};

// "" -> the model the latest distill stage kept under `keptRole`; "current" -> the run's
// current model; "none" -> skipped; else hf:NAME or a folder.
Entry resolve(StageContext& ctx, const std::string& key, const std::string& role, const std::string& keptRole) {
  RunState& st = ctx.state();
  const std::string text = ctx.text(key);
  const std::string where = "/stages/" + std::to_string(ctx.index()) + "/" + key;
  Entry e{key, role, Gpt2{nullptr}, text};
  if (text == "none") return e;
  if (text.empty()) {
    const auto* kept = st.keptModel(keptRole);
    if (!kept)
      throw InputError(where, "no earlier stage left a " + role + " model in this run",
                       key == "baseline" ? "set \"baseline\": true in the distill stage, give a source, or \"none\""
                                         : "put a distill stage before compare, or give a source");
    e.model = kept->model;
    e.source = "stage \"" + kept->stage + "\"";
  } else if (text == "current") {
    e.model = st.model();
    e.source = "the run's current model";
  } else {
    e.model = loadModelFolder(resolveModelSource(text));
    e.model->to(st.device);
  }
  return e;
}

class CompareStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    checkDtypeSupported(st.dtype, st.device);
    std::vector<Entry> entries;
    for (auto& e : {resolve(ctx, "teacher", "teacher", "distill/teacher"),
                    resolve(ctx, "baseline", "student from scratch", "distill/baseline"),
                    resolve(ctx, "student", "distilled student", "distill/student")})
      if (!e.model.is_empty()) entries.push_back(e);
    if (entries.empty()) throw InputError("/stages/" + std::to_string(ctx.index()), "nothing to compare");

    const TokenFile& val = st.valTokens();
    CompareMeta meta;
    meta.commit = buildCommit();
    meta.device = st.device.is_cuda() ? "cuda:" + std::to_string(std::max<int>(0, st.device.index()))
                                      : "cpu (" + std::to_string(torch::get_num_threads()) + " threads)";
    meta.torchVersion = compat::torchVersion();
    meta.timestamp = utcTimestamp();
    meta.dtype = c10::toString(st.dtype);
    meta.valSource = val.path().filename().string() + ", " + std::to_string(val.size()) + " tokens";
    meta.batch = ctx.integer("batch_size");
    meta.seqLen = ctx.integer("seq_len") > 0 ? ctx.integer("seq_len") : ctx.profile().data.seqLen;
    meta.warmup = ctx.integer("warmup");
    meta.repeats = ctx.integer("repeats");
    meta.evalWindows = ctx.integer("eval_windows");
    meta.memoryKind = st.device.is_cuda()
                          ? "weights + CUDA allocator peak during one forward"
                          : "weights + peak bytes of tensors allocated during one forward (CPU allocator hook)";

    std::vector<CompareRow> rows;
    int64_t i = 0;
    for (auto& e : entries) {
      ctx.cancel().throwIfCancelled();
      if (e.model->config().vocabSize != entries.front().model->config().vocabSize)
        throw InputError("/stages/" + std::to_string(ctx.index()) + "/" + e.key,
                         "vocabulary differs from the " + entries.front().role + "'s");
      // Every model in the same dtype on the same device: a copy, the originals stay fp32.
      Gpt2 m = copyModel(e.model, st.dtype, st.device);
      m->eval();
      CompareRow r;
      r.role = e.role;
      r.source = e.source;
      r.layers = m->config().nLayer;
      r.params = m->parameterCount();
      r.bytes = m->parameterBytes();
      EvalOptions eo;
      eo.seqLen = ctx.profile().data.seqLen;
      eo.batchSize = ctx.integer("eval_batch_size");
      eo.maxWindows = meta.evalWindows;
      const EvalResult ev = evaluate(m, val.data(), static_cast<int64_t>(val.size()), eo, &ctx.cancel());
      r.valLoss = ev.loss;
      r.perplexity = ev.perplexity;
      r.valTokens = ev.tokens;
      r.latencySeconds = timeForward(m, meta.batch, meta.seqLen, meta.warmup, meta.repeats, ctx.profile().seed);
      r.peakMb = (static_cast<double>(r.bytes) + static_cast<double>(forwardPeakBytes(m, meta))) / kBytesPerMb;
      rows.push_back(r);

      const std::string prefix = "compare/" + e.key + "/";
      const StatsSummary lat = summarize(r.latencySeconds);
      const StatsSummary tps = summarize(throughputSamples(meta, r));
      ctx.sample(prefix + "val_loss", i, r.valLoss);
      ctx.sample(prefix + "perplexity", i, r.perplexity);
      ctx.sample(prefix + "params", i, static_cast<double>(r.params));
      ctx.sample(prefix + "mb", i, static_cast<double>(r.bytes) / kBytesPerMb);
      ctx.sample(prefix + "latency_ms", i, lat.mean * 1e3);
      ctx.sample(prefix + "latency_ms_std", i, lat.std * 1e3);
      ctx.sample(prefix + "tokens_per_s", i, tps.mean);
      ctx.sample(prefix + "peak_mb", i, r.peakMb);
      ctx.progress(++i, static_cast<int64_t>(entries.size()), 0.0, "models");
    }
    const auto dir = ctx.runDir() / "compare";
    std::filesystem::create_directories(dir);
    const std::string md = compareMarkdown(meta, rows);
    writeFileAtomic(dir / (ctx.spec().name + ".md"), md);
    writeFileAtomic(dir / (ctx.spec().name + ".json"), compareJson(meta, rows).dump(2) + "\n");
    ctx.log(md);
  }

 private:
  // Bytes allocated during one no-grad forward beyond what was allocated before it.
  static int64_t forwardPeakBytes(Gpt2& m, const CompareMeta& meta) {
    torch::NoGradGuard noGrad;
    const auto device = m->parameters().front().device();
    const auto ids = torch::randint(0, m->config().vocabSize, {meta.batch, meta.seqLen},
                                    torch::TensorOptions().dtype(torch::kLong).device(device));
    return measureAllocations(device, [&] { (void)m->forward(ids); }).peakBytes;
  }
};

}  // namespace

StageType compareStageType() {
  const char* sourceHelp = " (empty: the latest distill stage's; \"current\": the run's model; \"none\": skip; "
                           "else hf:NAME or a folder)";
  SectionSpec s{
      "compare",
      "Teacher vs student from scratch vs distilled student: loss, size, latency, throughput, memory",
      {{"teacher", FieldKind::String, "", std::string("Teacher") + sourceHelp},
       {"baseline", FieldKind::String, "", std::string("Student trained from scratch") + sourceHelp},
       {"student", FieldKind::String, "", std::string("Distilled student") + sourceHelp},
       {"eval_windows", FieldKind::Int, 100, "Validation windows of data.seq_len (0: all)", 0, 1e9},
       {"eval_batch_size", FieldKind::Int, 8, "Windows per evaluation forward", 1, 65536},
       {"batch_size", FieldKind::Int, 1, "Batch of the timed forward passes", 1, 65536},
       {"seq_len", FieldKind::Int, 0, "Tokens per timed forward (0: data.seq_len)", 0, 1 << 20},
       {"warmup", FieldKind::Int, 2, "Untimed forward passes per model", 0, 1000},
       {"repeats", FieldKind::Int, 10, "Timed forward passes per model", 2, 100000}}};
  return {s, [] { return std::make_unique<CompareStage>(); }};
}

}  // namespace wb
