// Terminal progress and the end-of-run table; see progress_printer.h.
#include "app/bench/progress_printer.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace wb::cli {
namespace {

std::string formatDuration(double s) {
  if (s < 0) return "?";
  const auto total = static_cast<long long>(std::llround(s));
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60, total % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", total / 60, total % 60);
  return buf;
}

std::string formatNumber(double v) {
  std::ostringstream os;
  const double a = std::fabs(v);
  if (v == 0.0) {
    os << "0";
  } else if (a >= 1e6 || a < 1e-3) {
    os << std::scientific << std::setprecision(3) << v;
  } else {
    os << std::fixed << std::setprecision(a >= 100 ? 2 : 4) << v;
  }
  return os.str();
}

}  // namespace

ProgressPrinter::ProgressPrinter(bool quiet) : tty_(isatty(STDERR_FILENO) == 1), quiet_(quiet) {}

void ProgressPrinter::clearBar() {
  if (barShown_) std::fputs("\r\033[2K", stderr);
  barShown_ = false;
}

void ProgressPrinter::onRunStart(const std::string& runDir) {
  std::lock_guard lock(mutex_);
  std::fprintf(stderr, "run directory: %s\n", runDir.c_str());
}

void ProgressPrinter::onStageStart(int index, const std::string& type, const std::string& name) {
  std::lock_guard lock(mutex_);
  clearBar();
  std::fprintf(stderr, "== stage %d: %s (%s)\n", index + 1, name.c_str(), type.c_str());
}

void ProgressPrinter::onLog(const LogLine& line) {
  std::lock_guard lock(mutex_);
  if (quiet_ && line.level == LogLevel::Info) return;
  clearBar();
  std::fprintf(stderr, "[%8.2fs] %s%s\n", line.tSeconds,
               line.level == LogLevel::Info ? "" : (std::string(toString(line.level)) + ": ").c_str(),
               line.text.c_str());
}

void ProgressPrinter::onProgress(const Progress& p) {
  std::lock_guard lock(mutex_);
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  // Redraw at most 10 times a second; without a TTY print one line every 10 s.
  const auto minGap = tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(10000);
  if (now - lastDraw_ < minGap && p.step != p.total) return;
  lastDraw_ = now;
  const double frac = p.total > 0 ? static_cast<double>(p.step) / p.total : 0.0;
  const int width = 30;
  const int filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar += std::string(width - filled, '.');
  char line[256];
  std::snprintf(line, sizeof line, "%s [%s] %lld/%lld  ETA %s  %s %s", p.stage.c_str(), bar.c_str(),
                static_cast<long long>(p.step), static_cast<long long>(p.total),
                formatDuration(p.etaSeconds).c_str(), formatNumber(p.throughput).c_str(),
                p.throughputUnit.c_str());
  if (tty_) {
    std::fprintf(stderr, "\r\033[2K%s", line);
    barShown_ = true;
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void ProgressPrinter::onStageEnd(int, const std::string& name, RunStatus status) {
  std::lock_guard lock(mutex_);
  clearBar();
  std::fprintf(stderr, "== %s: %s\n", name.c_str(), toString(status));
}

std::string formatSummaryTable(const RunSummary& summary) {
  std::ostringstream os;
  os << "| stage | series | n | mean ± std | min | max | last |\n";
  os << "|---|---|---:|---:|---:|---:|---:|\n";
  for (const auto& s : summary.series) {
    os << "| " << s.stage << " | " << s.series << " | " << s.stats.n << " | "
       << formatNumber(s.stats.mean) << " ± " << formatNumber(s.stats.std) << " | "
       << formatNumber(s.stats.min) << " | " << formatNumber(s.stats.max) << " | "
       << formatNumber(s.last) << " |\n";
  }
  return os.str();
}

}  // namespace wb::cli
