// The safetensors format: a reader that memory-maps a file read-only and checks every
// rule of the format before handing out a byte, and a writer (temp file + rename).
// Torch-free: it deals in dtypes, shapes and byte spans; safetensors_torch.h turns
// them into tensors. Deliberately no support for pickle or any other weight format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace wb {

enum class StDtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtypeSize(StDtype dtype);
const char* dtypeName(StDtype dtype);  // "F32", as the header spells it
std::optional<StDtype> parseDtype(std::string_view name);

// The format's cap on the JSON header (the reference implementation's MAX_HEADER_SIZE).
constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

struct StTensorInfo {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data buffer (after the header)

  uint64_t bytes() const { return end - begin; }
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws InputError (where = path) naming the offending
  // tensor for any violation of the format.
  static SafetensorsFile open(const std::filesystem::path& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::filesystem::path& path() const { return path_; }
  // Names in file order: the order of the tensors' bytes in the data buffer.
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const StTensorInfo& info(const std::string& name) const;  // InputError when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The tensor's bytes inside the mapping; valid while this object lives.
  std::span<const std::byte> bytes(const std::string& name) const;
  uint64_t fileSize() const { return size_; }
  uint64_t headerSize() const { return headerSize_; }  // N, the JSON header's length

 private:
  SafetensorsFile() = default;
  void release();

  std::filesystem::path path_;
  const std::byte* map_ = nullptr;
  uint64_t size_ = 0;
  uint64_t headerSize_ = 0;
  std::vector<std::string> names_;
  std::unordered_map<std::string, StTensorInfo> index_;
  std::map<std::string, std::string> metadata_;
};

struct StEntry {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;  // must equal product(shape) * dtypeSize(dtype)
};

// Writes the header (padded with spaces so the data starts at a multiple of 8) and the
// tensors in the given order, streaming to `<path>.tmp-<pid>`, then fsync + rename.
// Throws InputError for inconsistent entries (duplicate name, size mismatch), RunError
// for I/O failures.
void writeSafetensors(const std::filesystem::path& path, const std::vector<StEntry>& entries,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace wb
