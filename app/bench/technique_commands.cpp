// Technique subcommands of gpt2-bench: lora-init (a random adapter in peft's format),
// lora-logits (a model's logits with an adapter attached, for parity checks against
// peft) and train-bench (KD / LoRA / full fine-tune step time and memory). They call
// core/api/technique_tools.h and print JSON.
#include <iostream>

#include "app/bench/commands.h"
#include "core/api/technique_tools.h"

namespace wb::cli {
namespace {

void addDevice(CLI::App* cmd, DeviceChoice& d) {
  cmd->add_option("--device", d.device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--threads", d.threads, "CPU threads (0: all cores)")->capture_default_str();
  cmd->add_option("--attention", d.attention, "math, flash or sdpa")
      ->check(CLI::IsMember({"math", "flash", "sdpa"}))
      ->capture_default_str();
}

}  // namespace

void addTechniqueCommands(CLI::App& app, int& exitCode) {
  auto* init = app.add_subcommand("lora-init", "Write a LoRA adapter with random non-zero A and B (peft format)");
  static LoraInitRequest ir;
  init->add_option("--model", ir.model, "Base model: hf:NAME or a folder")->required();
  init->add_option("--out", ir.out, "Adapter folder to write")->required();
  init->add_option("--rank", ir.rank, "LoRA rank r")->capture_default_str();
  init->add_option("--alpha", ir.alpha, "LoRA alpha")->capture_default_str();
  init->add_option("--targets", ir.targets, "Target modules (peft's suffix rule)")->delimiter(',')->capture_default_str();
  init->add_option("--b-std", ir.bStd, "Std of the random B")->capture_default_str();
  init->add_option("--seed", ir.seed, "Seed")->capture_default_str();
  init->callback([&exitCode] {
    std::cout << initLoraAdapter(ir).dump(2) << "\n";
    exitCode = kOk;
  });

  auto* logits = app.add_subcommand("lora-logits", "Logits of a model with a peft LoRA adapter (safetensors out)");
  static LoraLogitsRequest lr;
  logits->add_option("--model", lr.model, "Base model: hf:NAME or a folder")->required();
  logits->add_option("--adapter", lr.adapter, "peft adapter folder (omit: the base model alone)");
  logits->add_option("--tokens", lr.tokens, "uint16 token file; the first --seq-len tokens are the input")->required();
  logits->add_option("--seq-len", lr.seqLen, "Input length")->capture_default_str();
  logits->add_option("--out", lr.out, "Output .safetensors (logits, input_ids)")->required();
  logits->add_flag("--merge", lr.merge, "Merge the adapter into the weights first");
  addDevice(logits, lr.device);
  logits->callback([&exitCode] {
    std::cout << loraLogits(lr).dump(2) << "\n";
    exitCode = kOk;
  });

  auto* tb = app.add_subcommand("train-bench", "Time training steps (kd, lora, full) and report memory as JSON");
  static TrainBenchRequest tr;
  tb->add_option("--mode", tr.mode, "kd, lora or full")->check(CLI::IsMember({"kd", "lora", "full"}))->capture_default_str();
  tb->add_option("--model", tr.model,
                 "Trained model: 124M, 355M, 774M, a JSON config, hf:NAME or a folder (kd: \"\" = teacher with "
                 "--student-layers)")
      ->capture_default_str();
  tb->add_option("--teacher", tr.teacher, "kd: the teacher, same forms")->capture_default_str();
  tb->add_option("--student-layers", tr.studentLayers, "kd with --model \"\": student layers (0: half)")
      ->capture_default_str();
  tb->add_option("--batch", tr.batch, "Sequences per step")->capture_default_str();
  tb->add_option("--seq-len", tr.seqLen, "Tokens per sequence")->capture_default_str();
  tb->add_option("--warmup", tr.warmup, "Untimed steps")->capture_default_str();
  tb->add_option("--repeats", tr.repeats, "Timed steps")->capture_default_str();
  tb->add_option("--rank", tr.loraRank, "lora: rank")->capture_default_str();
  tb->add_option("--targets", tr.loraTargets, "lora: target modules")->delimiter(',')->capture_default_str();
  tb->add_option("--temperature", tr.temperature, "kd: T")->capture_default_str();
  tb->add_option("--alpha", tr.alpha, "kd: weight of the KD term")->capture_default_str();
  tb->add_option("--seed", tr.seed, "Seed for the random weights and tokens")->capture_default_str();
  addDevice(tb, tr.device);
  tb->callback([&exitCode] {
    std::cout << benchTrainingStep(tr).dump(2) << "\n";
    exitCode = kOk;
  });
}

}  // namespace wb::cli
