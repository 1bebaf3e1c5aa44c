// `gpt2-bench bench`: the benchmark sweep from the command line, from a profile (its
// model, device and first benchmark stage) or from --model plus options. Prints the
// Markdown table (or --json / --csv) and writes all three files with --out.
#include <iostream>

#include "app/bench/commands.h"
#include "core/api/bench_tools.h"

namespace wb::cli {

void addBenchCommands(CLI::App& app, int& exitCode) {
  auto* bench = app.add_subcommand("bench", "Benchmark prefill / decode over weights x batch x seq_len x attention backend");
  static BenchRequest r;
  static std::vector<int64_t> batches, seqs;
  static std::vector<std::string> backends, weights;
  static int64_t decode = 0, warmup = 0, repeats = 0;
  static std::string format = "md";
  bench->add_option("profile", r.profile, "Profile JSON (model, device, first benchmark stage)");
  bench->add_option("--model", r.model, "hf:NAME, a model folder or a JSON config (without a profile)");
  bench->add_option("--device", r.device.device, "cpu or cuda[:N]")->capture_default_str();
  bench->add_option("--dtype", r.device.dtype, "fp32, bf16 or fp16")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  bench->add_option("--threads", r.device.threads, "CPU threads (0: all cores)")->capture_default_str();
  auto* oBatch = bench->add_option("--batch-sizes", batches, "Batch sizes (default 1)")->delimiter(',');
  auto* oSeq = bench->add_option("--seq-lens", seqs, "Prompt lengths (default 64)")->delimiter(',');
  auto* oBack = bench->add_option("--backends", backends, "math,flash,sdpa (default math,flash)")->delimiter(',');
  auto* oWeights = bench->add_option("--weights", weights,
                                     "current,fp32,fp16,bf16,int8,int4-g32|64|128[-asym] (default current)")
                       ->delimiter(',');
  auto* oDecode = bench->add_option("--decode-tokens", decode, "Decode steps per run (default 16)");
  auto* oWarm = bench->add_option("--warmup", warmup, "Untimed runs per point (default 1)");
  auto* oRep = bench->add_option("--repeats", repeats, "Timed runs per point (default 5)");
  bench->add_option("--seed", r.seed, "Seed for fresh weights and prompt ids")->capture_default_str();
  bench->add_option("--out", r.outDir, "Write bench.md, bench.csv and bench.json here");
  bench->add_option("--format", format, "What to print: md, csv or json")
      ->check(CLI::IsMember({"md", "csv", "json"}))
      ->capture_default_str();
  bench->callback([&exitCode, oBatch, oSeq, oBack, oWeights, oDecode, oWarm, oRep] {
    if (oBatch->count()) r.batchSizes = batches;
    if (oSeq->count()) r.seqLens = seqs;
    if (oBack->count()) r.backends = backends;
    if (oWeights->count()) r.weights = weights;
    if (oDecode->count()) r.decodeTokens = decode;
    if (oWarm->count()) r.warmup = warmup;
    if (oRep->count()) r.repeats = repeats;
    const BenchOutput out = runBenchmark(r);
    if (format == "json") std::cout << out.json.dump(2) << "\n";
    else if (format == "csv") std::cout << out.csv;
    else std::cout << out.markdown;
    for (const auto& f : out.files) std::cerr << "wrote " << f << "\n";
    exitCode = kOk;
  });
}

}  // namespace wb::cli
