// Decode latency, eager vs CUDA graph (LibTorch ops or fused kernels); see perf_decode.h.
#include "core/bench/perf_decode.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <functional>
#include <tuple>

#include "core/bench/kineto_trace.h"
#include "core/bench/memory_probe.h"
#include "core/bench/perf_device.h"
#include "core/bench/stats.h"
#include "core/bench/timer.h"
#include "core/errors.h"
#include "core/model/graph_decode.h"
#include "core/run/run_state.h"

namespace wb {

namespace {

bool wants(const DecodePerfOptions& o, const std::string& path) {
  return std::find(o.paths.begin(), o.paths.end(), path) != o.paths.end();
}

PerfRow timedRow(std::string label, const BenchMetric& us) {
  PerfRow row;
  row.label = std::move(label);
  row.metrics = {us, {"tokens_per_s", {}}};
  for (double v : us.samples) row.metrics[1].samples.push_back(1e6 / v);
  return row;
}

int64_t identicalPrefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  int64_t n = 0;
  while (n < static_cast<int64_t>(std::min(a.size(), b.size())) && a[static_cast<size_t>(n)] == b[static_cast<size_t>(n)])
    ++n;
  return n;
}

}  // namespace

const std::vector<std::string>& decodePerfPaths() {
  static const std::vector<std::string> paths{"eager", "graph", "fused", "fused-nopdl", "int4", "int4-fp16-head",
                                              "persistent", "int4-persistent", "int4-fp16-head-persistent",
                                              "fused-max-smem", "int4-default-smem", "fused-ln-two-pass",
                                              "int4-ln-two-pass", "fused-attn-block", "int4-attn-block",
                                              "int4-fp16-head-attn-block", "fused-attn-block-atomic",
                                              "int4-attn-block-atomic", "fused-ln-unfolded", "int4-half2",
                                              "int4-attn-block-atomic-half2", "int4-attn-block-atomic-two-mlp",
                                              "int4-attn-block-atomic-carveout-44",
                                              "int4-attn-block-atomic-lm-head-4-rows",
                                              "int4-attn-block-atomic-lm-head-tiles-2",
                                              "int4-attn-block-atomic-argmax-reduced",
                                              "int4-attn-block-atomic-mlp-fc-4-rows",
                                              "int4-attn-block-atomic-control"};
  return paths;
}

std::string decodePerfPathList() {
  std::string list;
  for (const auto& p : decodePerfPaths()) list += (list.empty() ? "" : ", ") + p;
  return list;
}

PerfResult runDecodePerf(const DecodePerfOptions& o) {
  if (o.repeats < 2 || o.newTokens < 2 || o.promptLength < 1)
    throw InputError("perf decode", "needs repeats >= 2, new tokens >= 2 and a prompt of >= 1 token");
  const auto& known = decodePerfPaths();
  for (const auto& p : o.paths)
    if (std::find(known.begin(), known.end(), p) == known.end())
      throw InputError("perf decode", "unknown path '" + p + "'", "one of: " + decodePerfPathList());
  if (!o.traceDir.empty() && !kinetoTraceBuilt())
    throw InputError("perf decode", "--trace-dir needs a CUDA build (Kineto traces CUDA kernels)");
  const auto device = parsePerfDevice(o.device);
  const auto dtype = parseDtype(o.dtype, "--dtype");
  const Gpt2Config cfg = o.model.config();
  const int64_t capacity = o.promptLength + o.newTokens + 1;
  if (capacity > cfg.nPositions) throw InputError("perf decode", "prompt + new tokens exceed n_positions");

  PerfResult r;
  r.kind = "decode";
  r.env = perfEnvironment(o.device, o.command);
  r.config = {{"model", o.model.toJson()}, {"dtype", o.dtype},       {"batch", 1},
              {"prompt_tokens", o.promptLength}, {"new_tokens", o.newTokens}, {"warmup", o.warmup},
              {"repeats", o.repeats}, {"eager_attention", o.attention}, {"paths", o.paths},
              {"int4_group_size", o.int4GroupSize}, {"shared_carveout", o.sharedCarveout},
              {"steps_per_graph", o.stepsPerGraph},
              {"timing", device.is_cuda() ? "cuda events around the decode steps" : "steady_clock"}};

  torch::manual_seed(static_cast<int64_t>(o.seed));
  Gpt2 model(cfg);
  model->to(device, dtype);
  model->eval();
  model->setAttentionBackend(parseAttentionBackend(o.attention, "--attention"));
  torch::NoGradGuard noGrad;
  auto gen = at::detail::createCPUGenerator(o.seed);
  const auto promptT = torch::randint(cfg.vocabSize, {o.promptLength}, gen, torch::kLong);
  const std::vector<int64_t> prompt(promptT.data_ptr<int64_t>(), promptT.data_ptr<int64_t>() + o.promptLength);
  const auto ids = promptT.unsqueeze(0).to(device);
  const auto opts = model->parameters().front().options();
  DeviceTimer timer(device);

  // Eager: prefill untimed, then newTokens single-token forwards with the argmax kept
  // on the device, timed as one block.
  std::vector<int64_t> eagerTokens;
  double eagerMean = 0;
  if (wants(o, "eager") || !device.is_cuda()) {
    torch::Tensor tokens;
    auto eagerRun = [&](bool timed) {
      KvCache cache = model->makeCache(1, capacity, opts);
      auto logits = model->forward(ids, &cache);
      auto next = logits.select(1, o.promptLength - 1).argmax(-1, true);
      std::vector<torch::Tensor> out{next};
      if (timed) timer.start();
      for (int64_t i = 0; i < o.newTokens; ++i) {
        logits = model->forward(next, &cache);
        next = logits.select(1, 0).argmax(-1, true);
        out.push_back(next);
      }
      if (timed) timer.stop();
      tokens = torch::cat(out, 1);
      return timed ? timer.seconds() : 0.0;
    };
    BenchMetric us{"us_per_token", {}};
    for (int64_t i = 0; i < o.warmup; ++i) eagerRun(false);
    for (int64_t i = 0; i < o.repeats; ++i) us.samples.push_back(eagerRun(true) * 1e6 / static_cast<double>(o.newTokens));
    const auto cpu = tokens.to(torch::kCPU).contiguous().view({-1});
    eagerTokens.assign(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel());
    eagerMean = summarize(us.samples).mean;
    r.rows.push_back(timedRow("eager (KV cache)", us));
  }
  if (!device.is_cuda()) {
    r.warnings.push_back("cuda graph decode needs a CUDA device: eager only");
    return r;
  }

  // Each graph path: its own decoder (and static cache) over the same model.
  std::vector<int64_t> graphTokens, fusedTokens;
  double graphMean = 0, fusedMean = 0;
  auto runGraph = [&](const std::string& path, const std::string& label, const GraphDecodeOptions& go) {
    resetPeakMemory(device);
    GraphDecoder graph(model, capacity, go);
    BenchMetric us{"us_per_token", {}};
    auto run = [&](bool timed) {
      graph.prefill(prompt);
      if (timed) timer.start();
      graph.replay(o.newTokens);
      if (timed) timer.stop();
      return timed ? timer.seconds() : 0.0;
    };
    for (int64_t i = 0; i < o.warmup; ++i) run(false);
    for (int64_t i = 0; i < o.repeats; ++i) us.samples.push_back(run(true) * 1e6 / static_cast<double>(o.newTokens));
    const auto tokens = graph.generated();
    if (!o.traceDir.empty()) {  // after timing: the trace does not perturb the figures
      graph.prefill(prompt);
      torch::cuda::synchronize();
      startKinetoTrace();
      graph.replay(32);
      torch::cuda::synchronize();
      stopKinetoTrace(o.traceDir + "/decode-" + path + ".json");
    }
    PerfRow row = timedRow(label, us);
    const auto mem = probeMemory(device);
    row.values["mem_peak_mb"] = mem.cudaPeakMb;
    row.values["device_used_mb"] = nvmlUsedText(mem.nvml);
    const double mean = summarize(us.samples).mean;
    if (go.fusedOptions.persistent) {
      row.values["persistent_active"] = graph.fusedPersistent() ? 1 : 0;
      if (!graph.fusedPersistent())
        r.warnings.push_back(path + ": the persistent kernel could not run here; the per-phase kernels were timed");
    }
    if (go.fusedOptions.attentionBlock) {
      row.values["attention_block_active"] = graph.fusedAttentionBlock() ? 1 : 0;
      if (!graph.fusedAttentionBlock())
        r.warnings.push_back(path + ": the attention-block kernels could not run here; the per-phase kernels were timed");
      row.values["mlp_block_active"] = graph.fusedMlpBlock() ? 1 : 0;
    }
    if (go.fusedOptions.int4LmHead && go.fusedOptions.lmHeadRowTiles > 0) {
      row.values["lm_head_tiles_active"] = graph.fusedLmHeadTiles() ? 1 : 0;
      if (!graph.fusedLmHeadTiles() && !go.fusedOptions.persistent)
        r.warnings.push_back(path + ": the LM head's row tiles do not apply here (group size, width); the 4-rows-a-warp "
                                    "head was timed");
    }
    if (const int64_t bytes = graph.fusedWeightBytes(); bytes > 0) {
      row.values["weight_mb_per_token"] = static_cast<double>(bytes) / 1e6;
      row.values["weight_gb_per_s"] = static_cast<double>(bytes) / (mean * 1e-6) / 1e9;
    }
    if (!eagerTokens.empty() && go.fusedOptions.int4 == false) {
      const int64_t same = identicalPrefix(eagerTokens, tokens);
      row.values["tokens_identical_to_eager"] = same;
      if (same != static_cast<int64_t>(tokens.size()))
        r.warnings.push_back(path + " and eager decode diverge at token " + std::to_string(same) + " of " +
                             std::to_string(tokens.size()) + " (fp rounding of near-tied logits of random weights?)");
    }
    r.rows.push_back(std::move(row));
    return std::make_pair(tokens, mean);
  };
  if (wants(o, "graph")) std::tie(graphTokens, graphMean) = runGraph("graph", "cuda graph (static KV cache)", {});
  GraphDecodeOptions fused;
  fused.fused = true;
  fused.fusedOptions.sharedCarveout = o.sharedCarveout;
  fused.stepsPerGraph = o.stepsPerGraph;
  if (wants(o, "fused"))
    std::tie(fusedTokens, fusedMean) = runGraph("fused", "cuda graph, fused kernels (fp16)", fused);
  if (wants(o, "fused-nopdl")) {
    auto f = fused;
    f.fusedOptions.programmaticLaunch = false;
    runGraph("fused-nopdl", "cuda graph, fused kernels (fp16), no programmatic launch", f);
  }
  const std::string g = "g" + std::to_string(o.int4GroupSize);
  // The same step options with int4 Conv1D weights (and LM head).
  auto int4Of = [&](GraphDecodeOptions f, bool lmHead) {
    f.fusedOptions.int4 = true;
    f.fusedOptions.int4LmHead = lmHead;
    f.fusedOptions.groupSize = o.int4GroupSize;
    return f;
  };
  double int4Mean = 0, int4HeadMean = 0;
  if (wants(o, "int4"))
    int4Mean = runGraph("int4", "cuda graph, fused kernels, int4 " + g + " Conv1D + LM head", int4Of(fused, true)).second;
  // The same two steps with the other shared-memory carveout, in this process.
  double fusedMaxSmemMean = 0, int4DefaultSmemMean = 0;
  if (wants(o, "fused-max-smem")) {
    auto f = fused;
    f.fusedOptions.sharedCarveout = 100;
    fusedMaxSmemMean = runGraph("fused-max-smem", "cuda graph, fused kernels (fp16), largest shared-memory carveout", f).second;
  }
  if (wants(o, "int4-default-smem")) {
    auto f = int4Of(fused, true);
    f.fusedOptions.sharedCarveout = 0;
    int4DefaultSmemMean =
        runGraph("int4-default-smem", "cuda graph, fused kernels, int4 " + g + " Conv1D + LM head, no carveout request", f)
            .second;
  }
  // The fp16 step with its LayerNorms normalised in the kernel (one pass over sums of x and
  // x^2) instead of folded into the GEMVs; both steps with two passes over shared memory.
  double fusedUnfoldedMean = 0, fusedTwoPassMean = 0, int4TwoPassMean = 0;
  if (wants(o, "fused-ln-unfolded")) {
    auto f = fused;
    f.fusedOptions.layerNormFolded = false;
    fusedUnfoldedMean =
        runGraph("fused-ln-unfolded", "cuda graph, fused kernels (fp16), LayerNorm not folded", f).second;
  }
  if (wants(o, "fused-ln-two-pass")) {
    auto f = fused;
    f.fusedOptions.layerNormFolded = false;
    f.fusedOptions.layerNormTwoPass = true;
    fusedTwoPassMean =
        runGraph("fused-ln-two-pass", "cuda graph, fused kernels (fp16), LayerNorm not folded, two passes", f).second;
  }
  if (wants(o, "int4-ln-two-pass")) {
    auto f = int4Of(fused, true);
    f.fusedOptions.layerNormTwoPass = true;
    int4TwoPassMean =
        runGraph("int4-ln-two-pass", "cuda graph, fused kernels, int4 " + g + " Conv1D + LM head, two-pass LayerNorm", f)
            .second;
  }
  if (wants(o, "int4-fp16-head"))
    int4HeadMean =
        runGraph("int4-fp16-head", "cuda graph, fused kernels, int4 " + g + " Conv1D, fp16 LM head", int4Of(fused, false))
            .second;

  // A step variant three ways: fp16, int4 with the LM head, int4 with an fp16 LM head
  // (paths `fp16Path`, "int4-" + `suffix`, "int4-fp16-head-" + `suffix`); their means
  // (0 where not asked for).
  auto runThreeWays = [&](const std::string& fp16Path, const std::string& suffix, const std::string& stem,
                          const std::string& what, const GraphDecodeOptions& f) {
    double fp16Mean = 0, int4WithHeadMean = 0, int4Fp16HeadMean = 0;
    if (wants(o, fp16Path)) fp16Mean = runGraph(fp16Path, stem + " (fp16)" + what, f).second;
    if (wants(o, "int4-" + suffix))
      int4WithHeadMean =
          runGraph("int4-" + suffix, stem + ", int4 " + g + " Conv1D + LM head" + what, int4Of(f, true)).second;
    if (wants(o, "int4-fp16-head-" + suffix))
      int4Fp16HeadMean =
          runGraph("int4-fp16-head-" + suffix, stem + ", int4 " + g + " Conv1D, fp16 LM head" + what, int4Of(f, false))
              .second;
    return std::make_tuple(fp16Mean, int4WithHeadMean, int4Fp16HeadMean);
  };

  // ln_1 + c_attn + attention + attn.c_proj in one cluster launch a layer.
  auto block = fused;
  block.fusedOptions.attentionBlock = true;
  const auto [blockMean, int4BlockMean, int4HeadBlockMean] =
      runThreeWays("fused-attn-block", "attn-block", "cuda graph, fused kernels", ", attention block", block);
  auto atomicBlock = block;
  atomicBlock.fusedOptions.attentionBlockAtomic = true;
  if (wants(o, "fused-attn-block-atomic"))
    runGraph("fused-attn-block-atomic", "cuda graph, fused kernels (fp16), attention block, atomic head sum", atomicBlock);
  // The int4 atomic attention-block step, and variants of it in this process: `what` names
  // the option `tweak` changes.
  auto int4AtomicBlock = [&](const std::string& path, const std::string& what,
                             const std::function<void(FusedDecodeOptions&)>& tweak) {
    if (!wants(o, path)) return 0.0;
    auto f = int4Of(atomicBlock, true);
    tweak(f.fusedOptions);
    return runGraph(path, "cuda graph, fused kernels, int4 " + g + " Conv1D + LM head, attention block, atomic head sum" + what,
                    f)
        .second;
  };
  const double int4BlockAtomicMean = int4AtomicBlock("int4-attn-block-atomic", "", [](FusedDecodeOptions&) {});
  // The int4 steps with the half2 products instead of tensor cores.
  double int4Half2Mean = 0;
  if (wants(o, "int4-half2")) {
    auto f = int4Of(fused, true);
    f.fusedOptions.int4TensorCores = false;
    int4Half2Mean =
        runGraph("int4-half2", "cuda graph, fused kernels, int4 " + g + " Conv1D + LM head, half2 products", f).second;
  }
  const double int4BlockAtomicHalf2Mean = int4AtomicBlock(
      "int4-attn-block-atomic-half2", ", half2 products", [](FusedDecodeOptions& f) { f.int4TensorCores = false; });
  // The MLP as two kernels (FusedDecodeOptions::mlpBlock off).
  const double int4BlockAtomicTwoMlpMean = int4AtomicBlock(
      "int4-attn-block-atomic-two-mlp", ", MLP as two kernels", [](FusedDecodeOptions& f) { f.mlpBlock = false; });
  if (int4BlockAtomicMean > 0 && int4BlockAtomicTwoMlpMean > 0)
    r.summary["int4_mlp_block_speedup"] = int4BlockAtomicTwoMlpMean / int4BlockAtomicMean;
  // The per-phase int4 steps' carveout (44%, a 100 KB split), against the step's default:
  // 28% (64 KB) where the MLP blocks run and two attention blocks fit in that split, else 44%.
  const double int4BlockAtomic44Mean = int4AtomicBlock("int4-attn-block-atomic-carveout-44", ", carveout 44%",
                                                       [](FusedDecodeOptions& f) { f.sharedCarveout = 44; });
  if (int4BlockAtomicMean > 0 && int4BlockAtomic44Mean > 0)
    r.summary["int4_attn_block_atomic_default_carveout_speedup_vs_44"] = int4BlockAtomic44Mean / int4BlockAtomicMean;
  // The LM head as before its row tiles and packed argmax (the tensor-core GEMV, 4 rows a
  // warp, every block's candidate reduced by the last), the row tiles at 2 blocks an SM,
  // the reduced argmax alone; then the step as above once more, after the variants: what
  // the order of the paths costs.
  const double int4FourRowsMean =
      int4AtomicBlock("int4-attn-block-atomic-lm-head-4-rows", ", LM head 4 rows a warp, argmax reduced over blocks",
                      [](FusedDecodeOptions& f) {
                        f.lmHeadRowTiles = 0;
                        f.argmaxPacked = false;
                      });
  int4AtomicBlock("int4-attn-block-atomic-lm-head-tiles-2", ", LM head in row tiles, 2 blocks an SM",
                  [](FusedDecodeOptions& f) { f.lmHeadRowTiles = 2; });
  const double int4ReducedMean = int4AtomicBlock("int4-attn-block-atomic-argmax-reduced", ", argmax reduced over blocks",
                                                 [](FusedDecodeOptions& f) { f.argmaxPacked = false; });
  const double int4FcFourRowsMean = int4AtomicBlock("int4-attn-block-atomic-mlp-fc-4-rows", ", MLP block's c_fc 4 rows a warp",
                                                    [](FusedDecodeOptions& f) { f.mlpFcRowTiles = false; });
  const double int4ControlMean =
      int4AtomicBlock("int4-attn-block-atomic-control", " (again, after the variants)", [](FusedDecodeOptions&) {});
  if (int4BlockAtomicMean > 0) {
    if (int4FourRowsMean > 0) r.summary["int4_lm_head_tiles_packed_speedup_vs_4_rows"] = int4FourRowsMean / int4BlockAtomicMean;
    if (int4ReducedMean > 0) r.summary["int4_argmax_packed_speedup_vs_reduced"] = int4ReducedMean / int4BlockAtomicMean;
    if (int4FcFourRowsMean > 0) r.summary["int4_mlp_fc_tiles_speedup_vs_4_rows"] = int4FcFourRowsMean / int4BlockAtomicMean;
    if (int4ControlMean > 0) r.summary["int4_control_vs_first"] = int4BlockAtomicMean / int4ControlMean;
  }
  if (fusedMean > 0 && blockMean > 0) r.summary["attn_block_speedup_vs_fused"] = fusedMean / blockMean;
  if (int4Mean > 0 && int4BlockMean > 0) r.summary["int4_attn_block_speedup_vs_int4"] = int4Mean / int4BlockMean;
  if (blockMean > 0 && int4BlockMean > 0)
    r.summary["int4_attn_block_tokens_per_s_vs_attn_block_fp16"] = blockMean / int4BlockMean;
  if (blockMean > 0 && int4HeadBlockMean > 0)
    r.summary["int4_fp16_head_attn_block_tokens_per_s_vs_attn_block_fp16"] = blockMean / int4HeadBlockMean;

  // The persistent kernel.
  auto persistent = fused;
  persistent.fusedOptions.persistent = true;
  const auto [persistentMean, int4PersistentMean, int4HeadPersistentMean] =
      runThreeWays("persistent", "persistent", "cuda graph, one persistent kernel", "", persistent);
  if (fusedMean > 0 && persistentMean > 0) r.summary["persistent_speedup_vs_fused"] = fusedMean / persistentMean;
  if (persistentMean > 0 && int4PersistentMean > 0)
    r.summary["int4_persistent_tokens_per_s_vs_persistent_fp16"] = persistentMean / int4PersistentMean;
  if (persistentMean > 0 && int4HeadPersistentMean > 0)
    r.summary["int4_fp16_head_persistent_tokens_per_s_vs_persistent_fp16"] = persistentMean / int4HeadPersistentMean;
  if (fusedMean > 0 && int4PersistentMean > 0)
    r.summary["int4_persistent_tokens_per_s_vs_fused_fp16"] = fusedMean / int4PersistentMean;

  if (eagerMean > 0 && graphMean > 0) r.summary["graph_speedup_vs_eager"] = eagerMean / graphMean;
  if (graphMean > 0 && fusedMean > 0) r.summary["fused_speedup_vs_graph"] = graphMean / fusedMean;
  if (fusedMean > 0 && int4Mean > 0) r.summary["int4_tokens_per_s_vs_fused_fp16"] = fusedMean / int4Mean;
  if (fusedMean > 0 && int4BlockAtomicMean > 0)
    r.summary["int4_attn_block_atomic_tokens_per_s_vs_fused_fp16"] = fusedMean / int4BlockAtomicMean;
  if (int4Mean > 0 && int4Half2Mean > 0) r.summary["int4_tensor_core_speedup"] = int4Half2Mean / int4Mean;
  if (int4BlockAtomicMean > 0 && int4BlockAtomicHalf2Mean > 0)
    r.summary["int4_attn_block_atomic_tensor_core_speedup"] = int4BlockAtomicHalf2Mean / int4BlockAtomicMean;
  if (fusedMean > 0 && fusedMaxSmemMean > 0) r.summary["fused_max_smem_speedup"] = fusedMean / fusedMaxSmemMean;
  if (fusedMean > 0 && fusedUnfoldedMean > 0) r.summary["fused_ln_folded_speedup"] = fusedUnfoldedMean / fusedMean;
  if (fusedUnfoldedMean > 0 && fusedTwoPassMean > 0)
    r.summary["fused_one_pass_ln_speedup"] = fusedTwoPassMean / fusedUnfoldedMean;
  if (int4Mean > 0 && int4TwoPassMean > 0) r.summary["int4_one_pass_ln_speedup"] = int4TwoPassMean / int4Mean;
  if (int4Mean > 0 && int4DefaultSmemMean > 0) r.summary["int4_default_smem_speedup"] = int4Mean / int4DefaultSmemMean;
  if (fusedMean > 0 && int4HeadMean > 0) r.summary["int4_fp16_head_tokens_per_s_vs_fused_fp16"] = fusedMean / int4HeadMean;
  if (!eagerTokens.empty() && !graphTokens.empty()) {
    r.summary["tokens_compared"] = static_cast<int64_t>(graphTokens.size());
    r.summary["tokens_identical_prefix"] = identicalPrefix(eagerTokens, graphTokens);
  }
  if (!graphTokens.empty() && !fusedTokens.empty())
    r.summary["fused_tokens_identical_to_graph"] = identicalPrefix(graphTokens, fusedTokens);
  return r;
}

}  // namespace wb
