// SHA-256 (FIPS 180-4), written for this project: verifies downloaded assets against
// their pinned sums and names content-addressed caches. Integrity only: it is not
// constant-time and has no HMAC; nothing here is meant for secrets.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace wb {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // Pads and returns the digest; the object must not be updated afterwards.
  std::array<uint8_t, 32> finish();
  std::string finishHex();  // 64 lowercase hex digits

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t totalBytes_ = 0;
  bool finished_ = false;
};

std::string sha256Hex(std::string_view bytes);
// Streams the file; InputError naming the file when it cannot be read.
std::string sha256File(const std::filesystem::path& path);

}  // namespace wb
