// Model subcommands of gpt2-bench: eval, generate, init-model (inspect and models are in
// catalog_commands.cpp). They call
// core's LibTorch-free entry points (core/api/model_tools.h) and print JSON or text.
#include <iostream>
#include <sstream>

#include "app/bench/commands.h"
#include "core/api/model_tools.h"
#include "core/errors.h"

namespace wb::cli {
namespace {

void addDeviceOptions(CLI::App* cmd, DeviceChoice& d) {
  cmd->add_option("--device", d.device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--dtype", d.dtype, "fp32, bf16 or fp16")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  cmd->add_option("--threads", d.threads, "CPU threads (0: all cores)")->capture_default_str();
  cmd->add_option("--attention", d.attention, "math, flash or sdpa")
      ->check(CLI::IsMember({"math", "flash", "sdpa"}))
      ->capture_default_str();
}

std::vector<int64_t> parseIds(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    try {
      ids.push_back(std::stoll(part));
    } catch (const std::exception&) {
      throw InputError("--prompt-ids", "expected comma-separated integers, got \"" + part + "\"");
    }
  }
  return ids;
}

}  // namespace

void addModelCommands(CLI::App& app, int& exitCode) {
  auto* eval = app.add_subcommand("eval", "Mean next-token loss and perplexity on a token file");
  static EvalRequest er;
  static bool evalJson = false;
  eval->add_option("--model", er.model, "hf:NAME or a model folder")->required();
  eval->add_option("--tokens", er.tokens, "uint16 token file (nanoGPT .bin)")->required();
  eval->add_option("--seq-len", er.seqLen, "Window length (0: n_positions)")->capture_default_str();
  eval->add_option("--batch-size", er.batchSize, "Windows per forward pass")->capture_default_str();
  eval->add_option("--stride", er.stride, "Sliding-window stride (0: non-overlapping)")->capture_default_str();
  eval->add_option("--max-windows", er.maxWindows, "At most N windows (0: all)")->capture_default_str();
  eval->add_option("--dump-logits", er.dumpLogits, "Write the first window's logits (safetensors)");
  eval->add_flag("--json", evalJson, "Print JSON");
  addDeviceOptions(eval, er.device);
  eval->callback([&exitCode] {
    const EvalReport r = evaluateModel(er);
    if (evalJson) {
      std::cout << r.toJson().dump(2) << "\n";
    } else {
      std::cout << "loss " << r.loss << "  perplexity " << r.perplexity << "  tokens " << r.tokens
                << "  windows " << r.windows << "  (" << r.seconds << " s)\n";
    }
    exitCode = kOk;
  });

  auto* gen = app.add_subcommand("generate", "Continue a prompt");
  static GenerateRequest gr;
  static std::string promptIds;
  static bool genJson = false, noCache = false;
  gen->add_option("--model", gr.model, "hf:NAME or a model folder")->required();
  auto* p1 = gen->add_option("--prompt", gr.prompt, "Prompt text (GPT-2 tokenizer)");
  auto* p2 = gen->add_option("--prompt-ids", promptIds, "Prompt as comma-separated token ids");
  p1->excludes(p2);
  gen->add_option("--max-new-tokens", gr.maxNewTokens, "Tokens to generate")->capture_default_str();
  gen->add_option("--temperature", gr.temperature, "0: greedy")->capture_default_str();
  gen->add_option("--top-k", gr.topK, "0: off")->capture_default_str();
  gen->add_option("--top-p", gr.topP, "1: off")->capture_default_str();
  gen->add_option("--seed", gr.seed, "Sampling seed")->capture_default_str();
  gen->add_flag("--no-kv-cache", noCache, "Recompute the whole context at every step");
  gen->add_flag("--json", genJson, "Print JSON");
  addDeviceOptions(gen, gr.device);
  gen->callback([&exitCode] {
    if (!promptIds.empty()) gr.promptIds = parseIds(promptIds);
    if (gr.prompt.empty() && gr.promptIds.empty())
      throw InputError("--prompt", "give --prompt or --prompt-ids");
    gr.kvCache = !noCache;
    const GenerateReport r = generateFromModel(gr);
    if (genJson)
      std::cout << r.toJson().dump(2) << "\n";
    else
      std::cout << gr.prompt << r.text << "\n";
    exitCode = kOk;
  });

  auto* init = app.add_subcommand("init-model", "Write a fresh, seeded GPT-2 as a Hugging Face folder");
  static std::string initConfig, initOut;
  static uint64_t initSeed = 1337;
  init->add_option("--config", initConfig, "JSON object of GPT-2 config keys")->required();
  init->add_option("--out", initOut, "Output folder")->required();
  init->add_option("--seed", initSeed, "Seed")->capture_default_str();
  init->callback([&exitCode] {
    const auto j = nlohmann::json::parse(initConfig, nullptr, false);
    if (j.is_discarded()) throw InputError("--config", "not valid JSON");
    initModelFolder(j, initSeed, initOut);
    std::cerr << "wrote " << initOut << "\n";
    exitCode = kOk;
  });
}

}  // namespace wb::cli
