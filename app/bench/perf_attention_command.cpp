// `gpt2-bench perf attention`: the project's flash kernels against LibTorch's SDPA
// flash backend on one card (core/bench/attention_perf.h measures; this prints the
// Markdown table or JSON and writes the JSON with --out). CUDA builds only at run time.
#include <fstream>
#include <iostream>

#include "app/bench/commands.h"
#include "core/bench/attention_perf.h"
#include "core/errors.h"

namespace wb::cli {

void addPerfAttentionCommand(CLI::App& app, int& exitCode) {
  // The `perf` family may already exist (train, decode, ...): add to it.
  const auto found = app.get_subcommands([](CLI::App* sub) { return sub->get_name() == "perf"; });
  CLI::App* perf = found.empty() ? nullptr : found.front();
  if (!perf) {
    perf = app.add_subcommand("perf", "GPU performance measurements (CUDA events, JSON)");
    perf->require_subcommand(1);
  }
  auto* cmd = perf->add_subcommand("attention", "Flash attention kernels vs LibTorch SDPA flash (fwd + bwd TFLOP/s)");
  static AttentionPerfOptions o;
  static bool full = false;
  static std::string out, format = "md";
  cmd->add_option("--batch", o.batch, "Batch size")->capture_default_str();
  cmd->add_option("--heads", o.heads, "Heads")->capture_default_str();
  cmd->add_option("--seq-len", o.seqLen, "Sequence length (Tq = Tk)")->capture_default_str();
  cmd->add_option("--head-dim", o.headDim, "Head dim (64 or 128)")->capture_default_str();
  cmd->add_flag("--full", full, "Non-causal attention (default causal)");
  cmd->add_option("--dtype", o.dtype, "bf16 or fp16")->check(CLI::IsMember({"bf16", "fp16"}))->capture_default_str();
  cmd->add_option("--device", o.device, "CUDA device index")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "Untimed samples")->capture_default_str();
  cmd->add_option("--repeats", o.repeats, "Timed samples (mean ± std over these)")->capture_default_str();
  cmd->add_option("--inner", o.inner, "Back-to-back calls per sample")->capture_default_str();
  cmd->add_flag("--variants", o.variants, "Also time every tile variant of the kernels");
  cmd->add_option("--out", out, "Write the JSON here");
  cmd->add_option("--format", format, "What to print: md or json")->check(CLI::IsMember({"md", "json"}))
      ->capture_default_str();
  cmd->callback([&exitCode] {
    o.causal = !full;
    const auto r = runAttentionPerf(o);
    if (format == "json") std::cout << r.toJson().dump(2) << "\n";
    else std::cout << r.markdown();
    if (!out.empty()) {
      std::ofstream f(out);
      f << r.toJson().dump(2) << "\n";
      if (!f) throw RunError(out, "cannot write the JSON");
      std::cerr << "wrote " << out << "\n";
    }
    exitCode = kOk;
  });
}

}  // namespace wb::cli
