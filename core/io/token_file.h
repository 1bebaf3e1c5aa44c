// nanoGPT token files: a flat array of little-endian uint16 token ids (train.bin,
// val.bin). TokenFile maps one read-only and checks its size; writeTokenFile streams
// ids to a temp file and renames it. No header, no other dtypes: nanoGPT has neither.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

namespace wb {

class TokenFile {
 public:
  // InputError naming the file when it is missing, empty or of odd byte size.
  explicit TokenFile(const std::filesystem::path& path);
  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&& other) noexcept;
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  ~TokenFile();

  size_t size() const { return size_; }  // tokens
  const uint16_t* data() const { return data_; }
  uint16_t operator[](size_t i) const { return data_[i]; }
  // `count` tokens from `offset`; InputError naming the file when out of range.
  std::span<const uint16_t> slice(size_t offset, size_t count) const;
  // InputError naming the file and position of the first id >= vocabSize.
  void checkIds(int32_t vocabSize) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  void release();
  std::filesystem::path path_;
  const uint16_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mappedBytes_ = 0;
};

// Writes ids as uint16 through AtomicFileWriter (temp + rename). InputError (and no file)
// when an id is negative or above 65535.
void writeTokenFile(const std::filesystem::path& path, std::span<const int32_t> ids);

}  // namespace wb
