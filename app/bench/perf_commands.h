// `gpt2-bench perf ...`: one subcommand group, one add function per measurement, so
// other files can plug theirs in (perf attention lives in perf_attention_command.cpp):
// declare `void addPerfXCommand(CLI::App& perf, int& exitCode)` here and call it from
// addPerfCommands(). Every subcommand prints Markdown (or JSON) and writes both with --out.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "core/bench/perf_report.h"

namespace wb::cli {

// The command line recorded in each result (main() sets it before parsing).
void setPerfCommandLine(std::string commandLine);
const std::string& perfCommandLine();

// Creates the `perf` group and registers every perf subcommand on it.
void addPerfCommands(CLI::App& app, int& exitCode);

void addPerfTrainCommand(CLI::App& perf, int& exitCode);
void addPerfDecodeCommand(CLI::App& perf, int& exitCode);
void addPerfMatmulCommand(CLI::App& perf, int& exitCode);
void addPerfPipelineCommand(CLI::App& perf, int& exitCode);  // perf_pipeline_command.cpp

// Shared by the subcommands: --out and --format options, and printing/writing a result.
struct PerfOutputOptions {
  std::string out;              // a .json path or an existing folder; empty: print only
  std::string format = "md";    // what to print: md or json
};
void addPerfOutputOptions(CLI::App& command, PerfOutputOptions& options);
void emitPerfResult(const PerfResult& result, const PerfOutputOptions& options);

}  // namespace wb::cli
