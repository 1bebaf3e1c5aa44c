// Helpers shared by the tests: where the sources and the built CLI are, temporary
// run roots, running gpt2-bench as a child process.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace wb::test {

std::filesystem::path sourceDir();  // $WB_SOURCE_DIR
std::string benchExe();             // $WB_BENCH_EXE

struct ProcessResult {
  int exitCode = -1;
  std::string out, err;
};
// Runs a program to completion and captures stdout and stderr.
ProcessResult runProcess(const std::string& program, const std::vector<std::string>& args,
                         int timeoutMs = 120000);

}  // namespace wb::test
