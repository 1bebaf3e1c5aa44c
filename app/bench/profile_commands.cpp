// `gpt2-bench validate` and `gpt2-bench run`: check a profile, or run it into a run
// directory with a progress bar and a summary table. Ctrl-C cancels cleanly.
#include <csignal>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <unistd.h>

#include "app/bench/commands.h"
#include "app/bench/crash_report.h"
#include "app/bench/progress_printer.h"
#include "core/errors.h"
#include "core/io/remove_tree.h"
#include "core/parallel/dist_env.h"
#include "core/run/runner.h"

namespace wb::cli {
namespace {

CancelToken* gCancel = nullptr;

extern "C" void onInterrupt(int) {
  // A second Ctrl-C falls back to the default action (terminate at once).
  if (gCancel) gCancel->cancel();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

}  // namespace

void addProfileCommands(CLI::App& app, int& exitCode) {
  auto* validate = app.add_subcommand("validate", "Check a run profile and print it with defaults");
  static std::string validatePath;
  static bool printFull = false;
  validate->add_option("profile", validatePath, "Profile JSON file")->required();
  validate->add_flag("--print", printFull, "Print the profile with every default filled in");
  validate->callback([&exitCode] {
    Profile p = loadProfile(validatePath, builtinStages());
    if (printFull) std::cout << toJson(p).dump(2) << "\n";
    std::cerr << validatePath << ": ok (" << p.stages.size() << " stages)\n";
    exitCode = kOk;
  });

  auto* run = app.add_subcommand("run", "Run a profile; results go to a new run directory");
  static std::string runPath, runsDir;
  static bool quiet = false;
  run->add_option("profile", runPath, "Profile JSON file")->required();
  run->add_option("--runs-dir", runsDir,
                  "Where run directories go (default: $WB_RUNS_DIR or "
                  "$XDG_DATA_HOME/gpt2-workbench/runs)");
  run->add_flag("-q,--quiet", quiet, "Only warnings, errors and the summary");
  run->callback([&exitCode] {
    Profile p = loadProfile(runPath, builtinStages());
    static CancelToken cancel;
    gCancel = &cancel;
    std::signal(SIGINT, onInterrupt);
    std::signal(SIGTERM, onInterrupt);
    // Under torchrun / srun: this process is one rank. It trains on GPU LOCAL_RANK
    // (moved to the front of device.gpus, where the run loads its model); only rank 0
    // writes the run directory and prints; the others keep theirs in a temporary
    // folder that is removed after a clean finish (kept, and named, on failure).
    const DistEnv dist = readDistEnv();
    // A crash in a library's thread (NCCL, the store client) otherwise leaves only
    // "exitcode -11" in torchrun's log.
    installCrashReport(dist.distributed() ? "gpt2-bench rank " + std::to_string(dist.rank) : "gpt2-bench");
    auto root = runsDir.empty() ? defaultRunsRoot() : std::filesystem::path(runsDir);
    bool secondary = false;
    if (dist.distributed()) {
      auto& gpus = p.device.gpus;
      if (p.device.type == "cuda" && !gpus.empty())
        std::rotate(gpus.begin(), gpus.begin() + dist.localRank % static_cast<int>(gpus.size()), gpus.end());
      if (dist.rank != 0) {
        secondary = true;
        root = std::filesystem::temp_directory_path() /
               ("gpt2-workbench-rank" + std::to_string(dist.rank) + "-" + std::to_string(::getpid()));
      }
    }
    ProgressPrinter printer(quiet || secondary);
    const RunResult result = runProfile(p, root, &printer, cancel);
    if (!secondary) std::cout << formatSummaryTable(RunStore::loadSummary(result.runDir));
    std::cerr << (secondary ? "rank " + std::to_string(dist.rank) + " " : std::string()) << "run "
              << toString(result.status) << ": " << result.runDir.string() << "\n";
    if (!result.message.empty()) std::cerr << result.message << "\n";
    if (secondary && result.status == RunStatus::Finished) {
      setCrashPhase("removing the rank's temporary run directory");
      try {
        removeTree(root);  // not std::filesystem::remove_all: see remove_tree.h
      } catch (const Error& e) {
        // Leftovers in the temp directory must not fail a finished run.
        std::cerr << "rank " << dist.rank << ": " << e.what() << "\n";
      }
    }
    if (dist.distributed()) {
      // Every file is closed and flushed by now; ranks of a torchrun job leave without
      // static destructors (nothing left to run; the communicators and the store are
      // gone with the run). Rank 1's SIGSEGV after finished runs was std::filesystem::
      // remove_all, now removeTree above (core/io/remove_tree.h), not NCCL (docs/PERF.md, issue 8).
      setCrashPhase("flushing stdout and stderr");
      std::cout.flush();
      std::cerr.flush();
      std::fflush(stdout);
      std::fflush(stderr);
      setCrashPhase("leaving through _exit");
      const int code = result.status == RunStatus::Finished    ? kOk
                       : result.status == RunStatus::Cancelled ? kInterrupted
                       : result.badInput                       ? kBadInput
                                                               : kRunFailed;
      ::_exit(code);
    }
    switch (result.status) {
      case RunStatus::Finished: exitCode = kOk; break;
      case RunStatus::Cancelled: exitCode = kInterrupted; break;
      default: exitCode = result.badInput ? kBadInput : kRunFailed; break;
    }
  });
}

}  // namespace wb::cli
