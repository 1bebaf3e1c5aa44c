// gpt2-bench subcommands. Each group registers itself on the CLI11 app; a command's
// callback sets the process exit code (0 ok, 2 bad input, 3 run failed, 130 cancelled).
#pragma once

#include <CLI/CLI.hpp>

namespace wb::cli {

enum ExitCode { kOk = 0, kBadInput = 2, kRunFailed = 3, kInterrupted = 130 };

void addProfileCommands(CLI::App& app, int& exitCode);  // validate, run
void addDataCommands(CLI::App& app, int& exitCode);     // tokenize, prepare-data
void addModelCommands(CLI::App& app, int& exitCode);    // eval, generate, init-model
void addCatalogCommands(CLI::App& app, int& exitCode);  // inspect, models
void addBenchCommands(CLI::App& app, int& exitCode);    // bench
void addPerfAttentionCommand(CLI::App& app, int& exitCode);  // perf attention
void addTechniqueCommands(CLI::App& app, int& exitCode);  // lora-init, lora-logits, train-bench

}  // namespace wb::cli
