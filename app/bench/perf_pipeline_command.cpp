// `gpt2-bench perf pipeline`: one GPU vs a 2-stage NCCL pipeline (GPipe, 1F1B, several
// micro-batch counts) vs data parallel on GPT-2 medium; see core/parallel/pipeline_perf.h.
#include "app/bench/commands.h"
#include "app/bench/perf_commands.h"
#include "core/parallel/pipeline_perf.h"

namespace wb::cli {

void addPerfPipelineCommand(CLI::App& perf, int& exitCode) {
  auto* c = perf.add_subcommand(
      "pipeline", "Multi-GPU training: 1 GPU vs pipeline (GPipe/1F1B) vs data parallel; tokens/s, bubble, memory, losses");
  static PipelinePerfOptions o;
  static PerfOutputOptions out;
  c->add_option("--device", o.device, "cuda (GPUs 0..N-1), or cpu (threads, in-process transport)")
      ->capture_default_str();
  c->add_option("--precision", o.precision, "fp32 or bf16 (autocast)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  c->add_option("--attention", o.attention, "math, sdpa or flash")->capture_default_str();
  c->add_option("--batch-size", o.batchSize, "Sequences per step (global)")->capture_default_str();
  c->add_option("--seq-len", o.seqLen, "Tokens per sequence")->capture_default_str();
  c->add_option("--stages", o.stages, "Pipeline stages")->capture_default_str();
  c->add_option("--data-parallel", o.dataParallel, "Replicas of the data-parallel row (0/1: no such row)")
      ->capture_default_str();
  c->add_option("--micro-batches", o.microBatches, "Micro-batch counts of the pipeline rows")->delimiter(',');
  c->add_option("--schedules", o.schedules, "Pipeline schedules: gpipe, 1f1b")->delimiter(',');
  c->add_option("--baseline-micro-batches", o.baselineMicroBatches, "One GPU: accumulation chunks per step")
      ->capture_default_str();
  c->add_option("--balance", o.balance, "measure, compute, params, or layers per stage (\"16,8\"; halves allowed: \"6.5,7,7,3.5\")")->capture_default_str();
  c->add_option("--warmup", o.warmup, "Untimed steps")->capture_default_str();
  c->add_option("--steps", o.steps, "Steps per row, warm-up included")->capture_default_str();
  c->add_option("--lr", o.lr, "Peak learning rate")->capture_default_str();
  c->add_option("--fused-optimizer", o.fusedOptimizer, "Fused AdamW (LibTorch >= 2.4)")->capture_default_str();
  c->add_option("--seed", o.seed, "Seed for weights and data")->capture_default_str();
  c->add_option("--n-layer", o.model.nLayer, "Layers")->capture_default_str();
  c->add_option("--n-head", o.model.nHead, "Heads")->capture_default_str();
  c->add_option("--n-embd", o.model.nEmbd, "Width")->capture_default_str();
  c->add_option("--vocab", o.model.vocabSize, "Vocabulary size")->capture_default_str();
  c->add_option("--n-positions", o.model.nPositions, "Context length of the model")->capture_default_str();
  addPerfOutputOptions(*c, out);
  c->callback([&exitCode] {
    o.command = perfCommandLine();
    o.includeDataParallel = o.dataParallel > 1;
    emitPerfResult(runPipelinePerf(o), out);
    exitCode = kOk;
  });
}

}  // namespace wb::cli
