// gpt2-bench: the headless front end. Runs the same profiles as the desktop app,
// on servers and GPU boxes; maps core's typed errors to exit codes.
#include <iostream>

#include "app/bench/commands.h"
#include "app/bench/crash_report.h"
#include "app/bench/perf_commands.h"
#include "core/allocator_tuning.h"
#include "core/errors.h"

int main(int argc, char** argv) {
  wb::tuneAllocatorForTensors(argv);
  wb::cli::installCrashReport("gpt2-bench");  // `run` renames it per rank under torchrun
  CLI::App app{"gpt2-bench: run, validate and benchmark GPT-2 workbench profiles"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gpt2-bench 0.1.0");
  int exitCode = wb::cli::kOk;
  wb::cli::addProfileCommands(app, exitCode);
  wb::cli::addDataCommands(app, exitCode);
  wb::cli::addModelCommands(app, exitCode);
  wb::cli::addCatalogCommands(app, exitCode);
  wb::cli::addBenchCommands(app, exitCode);
  wb::cli::addPerfCommands(app, exitCode);
  wb::cli::setPerfCommandLine(wb::joinCommandLine(argc, argv));
  wb::cli::addPerfAttentionCommand(app, exitCode);  // joins the perf group made above
  wb::cli::addTechniqueCommands(app, exitCode);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : wb::cli::kBadInput;
  } catch (const wb::InputError& e) {
    std::cout.flush();  // what a command already printed comes before the error
    std::cerr << "error: " << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "hint: " << e.hint() << "\n";
    return wb::cli::kBadInput;
  } catch (const wb::Cancelled&) {
    std::cerr << "cancelled\n";
    return wb::cli::kInterrupted;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "error: " << e.what() << "\n";
    return wb::cli::kRunFailed;
  }
  return exitCode;
}
