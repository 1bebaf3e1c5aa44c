// `gpt2-bench perf {train,decode,matmul}` (and the registration point for the other
// perf subcommands); see perf_commands.h.
#include "app/bench/perf_commands.h"

#include <iostream>

#include "app/bench/commands.h"
#include "core/bench/perf_decode.h"
#include "core/bench/perf_matmul.h"
#include "core/bench/perf_train.h"

namespace wb::cli {
namespace {

std::string& commandLineStore() {
  static std::string s = "gpt2-bench perf";
  return s;
}

void addModelShapeOptions(CLI::App& c, PerfModelShape& m) {
  c.add_option("--n-layer", m.nLayer, "Layers")->capture_default_str();
  c.add_option("--n-head", m.nHead, "Heads")->capture_default_str();
  c.add_option("--n-embd", m.nEmbd, "Width")->capture_default_str();
  c.add_option("--vocab", m.vocabSize, "Vocabulary size")->capture_default_str();
  c.add_option("--n-positions", m.nPositions, "Context length of the model")->capture_default_str();
}

}  // namespace

void setPerfCommandLine(std::string commandLine) { commandLineStore() = std::move(commandLine); }
const std::string& perfCommandLine() { return commandLineStore(); }

void addPerfOutputOptions(CLI::App& c, PerfOutputOptions& o) {
  c.add_option("--out", o.out, "Write the result as JSON here (a .json path or a folder) plus a .md beside it");
  c.add_option("--format", o.format, "What to print: md or json")
      ->check(CLI::IsMember({"md", "json"}))
      ->capture_default_str();
}

void emitPerfResult(const PerfResult& r, const PerfOutputOptions& o) {
  if (o.format == "json") std::cout << perfJson(r).dump(2) << "\n";
  else std::cout << perfMarkdown(r);
  std::cout.flush();
  for (const auto& w : r.warnings) std::cerr << "warning: " << w << "\n";
  if (!o.out.empty())
    for (const auto& f : writePerfResult(r, o.out)) std::cerr << "wrote " << f << "\n";
}

void addPerfCommands(CLI::App& app, int& exitCode) {
  auto* perf = app.add_subcommand("perf", "GPU performance measurements (JSON + Markdown with device, versions, date)");
  perf->require_subcommand(1);
  addPerfTrainCommand(*perf, exitCode);
  addPerfDecodeCommand(*perf, exitCode);
  addPerfMatmulCommand(*perf, exitCode);
  addPerfPipelineCommand(*perf, exitCode);
  // Further perf subcommands register here (e.g. addPerfAttentionCommand(*perf, exitCode)).
}

void addPerfTrainCommand(CLI::App& perf, int& exitCode) {
  auto* c = perf.add_subcommand("train", "Training throughput of GPT-2 (124M by default): tokens/s, step time, MFU, memory");
  static TrainPerfOptions o;
  static PerfOutputOptions out;
  c->add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  c->add_option("--precision", o.precision, "fp32, bf16 or fp16 (autocast)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  c->add_option("--attention", o.attention, "math, sdpa or flash")->capture_default_str();
  c->add_option("--batch-size", o.batchSize, "Sequences per step")->capture_default_str();
  c->add_option("--seq-len", o.seqLen, "Tokens per sequence")->capture_default_str();
  c->add_option("--warmup", o.warmup, "Untimed steps")->capture_default_str();
  c->add_option("--repeats", o.repeats, "Timed steps")->capture_default_str();
  c->add_option("--fused-optimizer", o.fusedOptimizer, "Fused AdamW kernel (LibTorch >= 2.4)")->capture_default_str();
  c->add_option("--activation-checkpointing", o.activationCheckpointing, "Recompute blocks in backward")
      ->capture_default_str();
  c->add_option("--fused-lm-head-loss", o.fusedLmHeadLoss, "LM head + cross-entropy in row chunks (no full logits)")
      ->capture_default_str();
  c->add_option("--lm-head-chunk-rows", o.lmHeadChunkRows, "Rows per chunk of the fused LM-head loss")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--loss-kernel", o.lossKernel,
                "Fused loss: softmax cross-entropy kernel where it fits (false: LibTorch ops)")
      ->capture_default_str();
  c->add_option("--fused-layernorm", o.fusedLayerNorm, "LayerNorm kernel under autocast (false: LibTorch's)")
      ->capture_default_str();
  c->add_option("--grads-to-none", o.gradsToNone, "Drop gradients between steps (false: zero them in place)")
      ->capture_default_str();
  c->add_option("--peak-tflops", o.peakTflops, "Matmul peak for MFU (0: measure it)")->capture_default_str();
  c->add_option("--datasheet-tflops", o.datasheetTflops, "Datasheet peak for MFU")->capture_default_str();
  c->add_option("--seed", o.seed, "Seed for weights and tokens")->capture_default_str();
  c->add_option("--trace", o.traceFile, "Also trace 3 steps after the timed ones with Kineto into this JSON file (CUDA)");
  addModelShapeOptions(*c, o.model);
  addPerfOutputOptions(*c, out);
  c->callback([&exitCode] {
    o.command = perfCommandLine();
    emitPerfResult(runTrainPerf(o), out);
    exitCode = kOk;
  });
}

void addPerfDecodeCommand(CLI::App& perf, int& exitCode) {
  auto* c = perf.add_subcommand("decode", "Batch-1 greedy decode µs/token: eager, CUDA graph, fused kernels, int4");
  static DecodePerfOptions o;
  static PerfOutputOptions out;
  c->add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  c->add_option("--dtype", o.dtype, "fp32, bf16 or fp16 weights")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  c->add_option("--attention", o.attention, "Eager path's attention backend")->capture_default_str();
  c->add_option("--prompt-tokens", o.promptLength, "Prompt length (random ids)")->capture_default_str();
  c->add_option("--new-tokens", o.newTokens, "Timed decode steps per repeat")->capture_default_str();
  c->add_option("--warmup", o.warmup, "Untimed repeats")->capture_default_str();
  c->add_option("--repeats", o.repeats, "Timed repeats")->capture_default_str();
  c->add_option("--seed", o.seed, "Seed for weights and prompt")->capture_default_str();
  c->add_option("--paths", o.paths, decodePerfPathList())
      ->delimiter(',')
      ->capture_default_str();
  c->add_option("--int4-group-size", o.int4GroupSize, "int4 paths: inputs per group (32, 64, 128)")
      ->capture_default_str();
  c->add_option("--shared-carveout", o.sharedCarveout,
                "Fused paths: the shared-memory carveout every kernel asks for, percent (0 = no request, "
                "-1 = the weight format's default)")
      ->check(CLI::Range(-1, 100))
      ->capture_default_str();
  c->add_option("--steps-per-graph", o.stepsPerGraph,
                "Fused paths: decode steps per captured graph (the steps inside one hand over by programmatic launch)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->capture_default_str();
  c->add_option("--trace-dir", o.traceDir,
                "Also trace 32 tokens of each graph path with Kineto into DIR/decode-<path>.json (CUDA builds)")
      ->check(CLI::ExistingDirectory);
  addModelShapeOptions(*c, o.model);
  addPerfOutputOptions(*c, out);
  c->callback([&exitCode] {
    o.command = perfCommandLine();
    emitPerfResult(runDecodePerf(o), out);
    exitCode = kOk;
  });
}

void addPerfMatmulCommand(CLI::App& perf, int& exitCode) {
  auto* c = perf.add_subcommand("matmul", "Dense GEMM TFLOP/s (the measured peak behind MFU)");
  static MatmulPerfOptions o;
  static PerfOutputOptions out;
  c->add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  c->add_option("--dtype", o.dtype, "fp32, bf16 or fp16")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  c->add_option("--sizes", o.sizes, "Square sizes n (n x n x n)")->delimiter(',');
  c->add_option("--warmup", o.warmup, "Untimed products per size")->capture_default_str();
  c->add_option("--repeats", o.repeats, "Timed products per size")->capture_default_str();
  c->add_option("--input-sets", o.inputSets, "Input pairs rotated between repeats")->capture_default_str();
  addPerfOutputOptions(*c, out);
  c->callback([&exitCode] {
    o.command = perfCommandLine();
    emitPerfResult(runMatmulPerf(o), out);
    exitCode = kOk;
  });
}

}  // namespace wb::cli
