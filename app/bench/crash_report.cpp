// Fatal-signal report; see crash_report.h. The handler uses only write(2), open(2),
// read(2) and backtrace_symbols_fd (which writes straight to the fd, no malloc once
// backtrace() has been called once at install time).
#include "app/bench/crash_report.h"

#include <dirent.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>

namespace wb::cli {
namespace {

char gLabel[64] = "";
const char* volatile gPhase = nullptr;
char gAltStack[64 * 1024];

void put(const char* s) {
  if (s) (void)!::write(2, s, std::strlen(s));
}

void putNumber(unsigned long long v, int base = 10) {
  char buf[32];
  int n = 0;
  do {
    const int d = static_cast<int>(v % static_cast<unsigned>(base));
    buf[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
    v /= static_cast<unsigned>(base);
  } while (v && n < 31);
  char out[34];
  int m = 0;
  if (base == 16) {
    out[m++] = '0';
    out[m++] = 'x';
  }
  while (n) out[m++] = buf[--n];
  (void)!::write(2, out, static_cast<size_t>(m));
}

// Copies /proc/self/task/<tid>/comm (a thread's name) to stderr.
void putThreadName(long tid) {
  char path[64] = "/proc/self/task/";
  char num[24];
  int n = 0;
  do {
    num[n++] = static_cast<char>('0' + tid % 10);
    tid /= 10;
  } while (tid && n < 23);
  size_t len = std::strlen(path);
  while (n) path[len++] = num[--n];
  std::memcpy(path + len, "/comm", 6);
  const int fd = ::open(path, O_RDONLY);
  if (fd < 0) return;
  char name[32];
  const ssize_t got = ::read(fd, name, sizeof name - 1);
  ::close(fd);
  if (got <= 0) return;
  name[got] = '\0';
  if (name[got - 1] == '\n') name[got - 1] = '\0';
  put(name);
}

extern "C" void onFatalSignal(int sig, siginfo_t* info, void* ctx) {
  const long tid = ::syscall(SYS_gettid);
  put("\n");
  put(gLabel);
  put(" fatal signal ");
  putNumber(static_cast<unsigned long long>(sig));
  put(" (");
  put(strsignal(sig));
  put(") at address ");
  putNumber(reinterpret_cast<unsigned long long>(info ? info->si_addr : nullptr), 16);
  put(" in thread ");
  putNumber(static_cast<unsigned long long>(tid));
  put(" \"");
  putThreadName(tid);
  put("\" (main thread ");
  putNumber(static_cast<unsigned long long>(::getpid()));
  put(")\n");
  if (const char* phase = gPhase) {
    put("while: ");
    put(phase);
    put("\n");
  }
#if defined(__x86_64__)
  // A jump through a null pointer leaves pc = 0 and the unwinder stuck; the caller's
  // return address is then the word on top of the stack.
  if (ctx) {
    const auto* uc = static_cast<const ucontext_t*>(ctx);
    const auto pc = static_cast<unsigned long long>(uc->uc_mcontext.gregs[REG_RIP]);
    const auto sp = static_cast<unsigned long long>(uc->uc_mcontext.gregs[REG_RSP]);
    put("pc ");
    putNumber(pc, 16);
    if (pc < 4096 && sp) {
      const auto ret = *reinterpret_cast<const unsigned long long*>(sp);
      put(", return address on the stack ");
      putNumber(ret, 16);
      Dl_info where{};
      if (dladdr(reinterpret_cast<void*>(ret), &where) && where.dli_fname) {
        put(" in ");
        put(where.dli_fname);
        put(" +");
        putNumber(ret - reinterpret_cast<unsigned long long>(where.dli_fbase), 16);
        if (where.dli_sname) {
          put(" (");
          put(where.dli_sname);
          put(")");
        }
      }
    }
    put("\n");
  }
#endif
  put("backtrace:\n");
  void* frames[64];
  const int depth = backtrace(frames, 64);
  backtrace_symbols_fd(frames, depth, 2);
  // Which threads were alive: names tell NCCL's (NCCL ...), LibTorch's (pt_...) apart.
  put("live threads:");
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      long t = 0;
      for (const char* c = e->d_name; *c; ++c) t = t * 10 + (*c - '0');
      put(" ");
      put(e->d_name);
      put("=\"");
      putThreadName(t);
      put("\"");
    }
    ::closedir(d);
  }
  put("\n");
  // SA_RESETHAND restored the default action: re-raise so the exit status is the signal.
  ::raise(sig);
}

}  // namespace

void setCrashPhase(const char* phase) { gPhase = phase; }

void installCrashReport(const std::string& label) {
  static bool installed = false;
  std::strncpy(gLabel, label.c_str(), sizeof gLabel - 1);
  if (installed) return;
  installed = true;
  void* warm[2];
  (void)backtrace(warm, 2);  // loads the unwinder now, not inside the handler
  stack_t alt{};
  alt.ss_sp = gAltStack;
  alt.ss_size = sizeof gAltStack;
  (void)sigaltstack(&alt, nullptr);  // a stack overflow still gets its report (main thread)
  struct sigaction sa {};
  sa.sa_sigaction = onFatalSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) (void)sigaction(sig, &sa, nullptr);
}

}  // namespace wb::cli
