// Test helpers; see test_support.h.
#include "tests/support/test_support.h"

#include <QProcess>
#include <QStringList>
#include <cstdlib>

namespace wb::test {

std::filesystem::path sourceDir() {
  const char* s = std::getenv("WB_SOURCE_DIR");
  return s ? std::filesystem::path(s) : std::filesystem::current_path();
}

std::string benchExe() {
  const char* s = std::getenv("WB_BENCH_EXE");
  return s ? s : "gpt2-bench";
}

ProcessResult runProcess(const std::string& program, const std::vector<std::string>& args,
                         int timeoutMs) {
  QProcess p;
  QStringList list;
  for (const auto& a : args) list << QString::fromStdString(a);
  p.start(QString::fromStdString(program), list);
  ProcessResult r;
  if (!p.waitForStarted(10000)) return r;
  p.waitForFinished(timeoutMs);
  r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
  r.out = p.readAllStandardOutput().toStdString();
  r.err = p.readAllStandardError().toStdString();
  return r;
}

}  // namespace wb::test
