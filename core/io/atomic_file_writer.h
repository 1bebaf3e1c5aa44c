// Streams a large file to `<path>.tmp-<pid>` and renames it over `path` on commit(),
// so readers never see a torn file. For contents that fit in memory, writeFileAtomic
// (atomic_file.h) is simpler. Not thread-safe; one writer per path at a time.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace wb {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path path);  // creates the temp file
  ~AtomicFileWriter();                                    // removes it unless committed
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t bytes);
  // fsync, rename over the target, fsync the folder. Throws RunError.
  void commit();

 private:
  [[noreturn]] void fail(const std::string& message, int err, const std::string& hint = {});

  std::filesystem::path path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace wb
