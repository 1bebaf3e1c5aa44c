// A last word from a process that dies of a fatal signal (SIGSEGV, SIGBUS, SIGFPE,
// SIGILL, SIGABRT): which thread (id and name), the faulting address, a backtrace and
// the names of every live thread go to stderr, then the signal's default action runs
// (the exit status still says which signal). For crashes inside libraries' own threads
// (NCCL, the c10d store) that no exception handler sees. Not a core dump, not symbolised
// beyond what backtrace_symbols_fd prints (library + offset).
#pragma once

#include <string>

namespace wb::cli {

// Installs the handlers once per process; `label` starts every line ("rank 1").
void installCrashReport(const std::string& label);
// What the process is doing now, named in a report ("removing the temporary run
// directory"); a string literal (the pointer is kept), nullptr for nothing.
void setCrashPhase(const char* phase);

}  // namespace wb::cli
