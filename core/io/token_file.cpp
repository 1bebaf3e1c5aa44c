// Memory-mapped nanoGPT .bin reader and streaming writer; see token_file.h.
#include "core/io/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/io/atomic_file_writer.h"

namespace wb {

// The file is little-endian and mapped as is.
static_assert(std::endian::native == std::endian::little,
              "token files are read without a byte swap");

namespace {
std::string errnoText() {
  return std::strerror(errno);
}
}  // namespace

TokenFile::TokenFile(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw InputError(path.string(),
                     (errno == ENOENT ? "token file is missing" : "cannot open: " + errnoText()));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string err = errnoText();
    ::close(fd);
    throw InputError(path.string(), "cannot stat: " + err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(path.string(), "not a regular file");
  }
  const auto bytes = size_t(st.st_size);
  if (bytes == 0) {
    ::close(fd);
    throw InputError(path.string(), "token file is empty",
                     "prepare it again (gpt2-bench prepare-data)");
  }
  if (bytes % 2 != 0) {
    ::close(fd);
    throw InputError(path.string(),
                     "size " + std::to_string(bytes) +
                         " bytes is odd; a uint16 token file has an "
                         "even size",
                     "the file is truncated or not a nanoGPT uint16 .bin");
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const std::string err = errnoText();
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) throw InputError(path.string(), "mmap failed: " + err);
  data_ = static_cast<const uint16_t*>(p);
  size_ = bytes / 2;
  mappedBytes_ = bytes;
}

TokenFile::TokenFile(TokenFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mappedBytes_(std::exchange(other.mappedBytes_, 0)) {}

TokenFile& TokenFile::operator=(TokenFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mappedBytes_ = std::exchange(other.mappedBytes_, 0);
  }
  return *this;
}

TokenFile::~TokenFile() {
  release();
}

void TokenFile::release() {
  if (data_) ::munmap(const_cast<uint16_t*>(data_), mappedBytes_);
  data_ = nullptr;
  size_ = mappedBytes_ = 0;
}

std::span<const uint16_t> TokenFile::slice(size_t offset, size_t count) const {
  if (offset > size_ || count > size_ - offset)
    throw InputError(path_.string(), "tokens [" + std::to_string(offset) + ", " +
                                         std::to_string(offset + count) + ") are outside the " +
                                         std::to_string(size_) + " tokens of the file");
  return {data_ + offset, count};
}

void TokenFile::checkIds(int32_t vocabSize) const {
  for (size_t i = 0; i < size_; ++i) {
    if (int32_t(data_[i]) >= vocabSize)
      throw InputError(path_.string(),
                       "token " + std::to_string(data_[i]) + " at position " + std::to_string(i) +
                           " is outside the vocabulary of " + std::to_string(vocabSize),
                       "was the file made with another tokenizer?");
  }
}

void writeTokenFile(const std::filesystem::path& path, std::span<const int32_t> ids) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] > 65535)
      throw InputError(path.string(),
                       "token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                           " does not fit in uint16",
                       "nanoGPT .bin files hold vocabularies of at most 65,536 tokens");
  }
  AtomicFileWriter out(path);  // removes its temp file if anything below throws
  // Streams in chunks so a large corpus never needs a second full-size buffer.
  std::vector<uint16_t> chunk(1 << 16);
  for (size_t at = 0; at < ids.size(); at += chunk.size()) {
    const size_t n = std::min(chunk.size(), ids.size() - at);
    for (size_t i = 0; i < n; ++i) chunk[i] = uint16_t(ids[at + i]);
    out.write(chunk.data(), n * sizeof(uint16_t));
  }
  out.commit();
}

}  // namespace wb
