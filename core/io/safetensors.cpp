// safetensors reader and writer; see safetensors.h. The checks follow the format's
// reference implementation (huggingface/safetensors) and add a few it leaves to
// serde: duplicate keys and unknown entry keys are errors here too.
#include "core/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/io/atomic_file_writer.h"

namespace wb {
namespace {

using ojson = nlohmann::ordered_json;

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host needs byte swaps");

struct DtypeRow {
  StDtype dtype;
  const char* name;
  size_t size;
};
constexpr DtypeRow kDtypes[] = {
    {StDtype::F64, "F64", 8},   {StDtype::F32, "F32", 4}, {StDtype::F16, "F16", 2},
    {StDtype::BF16, "BF16", 2}, {StDtype::I64, "I64", 8}, {StDtype::I32, "I32", 4},
    {StDtype::I16, "I16", 2},   {StDtype::I8, "I8", 1},   {StDtype::U8, "U8", 1},
    {StDtype::BOOL, "BOOL", 1},
};

std::string inQuotes(const std::string& s) {
  return "\"" + s + "\"";
}

std::string tensorWord(const std::string& name) {
  return "tensor " + inQuotes(name) + ": ";
}

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Product of the dimensions times the item size, or nullopt on int64 overflow. A zero
// dimension makes the product zero however large the others are.
std::optional<int64_t> byteCount(const std::vector<int64_t>& shape, size_t itemSize) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
  if (__builtin_mul_overflow(n, static_cast<int64_t>(itemSize), &n)) return std::nullopt;
  return n;
}

// Parses the header, rejecting duplicate keys at any depth: nlohmann keeps the last of
// two equal keys silently, and a second "data_offsets" must not slip through that way.
ojson parseHeader(const std::string& text, const std::string& where) {
  std::vector<std::set<std::string>> keysPerObject;
  std::string duplicate;
  ojson::parser_callback_t cb = [&](int, ojson::parse_event_t event, ojson& parsed) {
    switch (event) {
      case ojson::parse_event_t::object_start:
        keysPerObject.emplace_back();
        break;
      case ojson::parse_event_t::object_end:
        keysPerObject.pop_back();
        break;
      case ojson::parse_event_t::key:
        if (!keysPerObject.back().insert(parsed.get<std::string>()).second && duplicate.empty())
          duplicate = parsed.get<std::string>();
        break;
      default:
        break;
    }
    return true;
  };
  ojson j;
  try {
    j = ojson::parse(text, cb);
  } catch (const ojson::parse_error& e) {
    std::string msg = e.what();
    if (const auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
    throw InputError(where, "header is not valid JSON: " + msg,
                     "the file is damaged or not a safetensors file");
  }
  if (!duplicate.empty())
    throw InputError(where, "header has the key " + inQuotes(duplicate) + " twice");
  return j;
}

int64_t nonNegativeInt(const ojson& v, const std::string& where, const std::string& what) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw InputError(where, what + " " + v.dump() + " is too large");
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  if (v.is_number_integer()) throw InputError(where, what + " is negative (" + v.dump() + ")");
  throw InputError(where, what + " must be a non-negative integer, got " + v.dump());
}

StTensorInfo parseEntry(const std::string& name, const ojson& e, uint64_t dataSize,
                        const std::string& where) {
  const std::string t = tensorWord(name);
  if (!e.is_object())
    throw InputError(where,
                     t + "entry must be an object {dtype, shape, data_offsets}, got " + e.dump());
  for (const auto& [key, value] : e.items()) {
    (void)value;
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw InputError(where, t + "unknown key " + inQuotes(key) +
                                  " (an entry has only dtype, shape and data_offsets)");
  }
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) throw InputError(where, t + "missing " + inQuotes(key));

  StTensorInfo info;
  info.name = name;
  const ojson& dt = e["dtype"];
  const auto dtype = dt.is_string() ? parseDtype(dt.get<std::string>()) : std::nullopt;
  if (!dtype)
    throw InputError(where, t + "unsupported dtype " + dt.dump(),
                     "supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL");
  info.dtype = *dtype;

  const ojson& shape = e["shape"];
  if (!shape.is_array()) throw InputError(where, t + "shape must be an array, got " + shape.dump());
  for (size_t i = 0; i < shape.size(); ++i)
    info.shape.push_back(nonNegativeInt(shape[i], where, t + "shape[" + std::to_string(i) + "]"));

  const ojson& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    throw InputError(where, t + "data_offsets must be [begin, end], got " + off.dump());
  info.begin = static_cast<uint64_t>(nonNegativeInt(off[0], where, t + "data_offsets[0]"));
  info.end = static_cast<uint64_t>(nonNegativeInt(off[1], where, t + "data_offsets[1]"));
  if (info.begin > info.end)
    throw InputError(where, t + "data_offsets " + off.dump() + " have begin > end");
  if (info.end > dataSize)
    throw InputError(where,
                     t + "data_offsets " + off.dump() + " run past the data buffer (" +
                         std::to_string(dataSize) + " bytes)",
                     "the file is truncated or its header is wrong");

  const auto need = byteCount(info.shape, dtypeSize(info.dtype));
  if (!need)
    throw InputError(where, t + "shape " + shapeText(info.shape) + " of " + dtypeName(info.dtype) +
                                " overflows a 64-bit byte count");
  if (static_cast<uint64_t>(*need) != info.bytes())
    throw InputError(where, t + "shape " + shapeText(info.shape) + " of " + dtypeName(info.dtype) +
                                " needs " + std::to_string(*need) + " bytes but data_offsets " +
                                off.dump() + " hold " + std::to_string(info.bytes()));
  return info;
}

}  // namespace

size_t dtypeSize(StDtype dtype) {
  for (const auto& r : kDtypes)
    if (r.dtype == dtype) return r.size;
  return 0;
}

const char* dtypeName(StDtype dtype) {
  for (const auto& r : kDtypes)
    if (r.dtype == dtype) return r.name;
  return "?";
}

std::optional<StDtype> parseDtype(std::string_view name) {
  for (const auto& r : kDtypes)
    if (name == r.name) return r.dtype;
  return std::nullopt;
}

int64_t StTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated on open: cannot overflow
  return n;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept {
  *this = std::move(o);
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    size_ = std::exchange(o.size_, 0);
    headerSize_ = o.headerSize_;
    names_ = std::move(o.names_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  release();
}

void SafetensorsFile::release() {
  if (map_) ::munmap(const_cast<std::byte*>(map_), size_);
  map_ = nullptr;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string where = path.string();
  SafetensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw InputError(where, std::string("cannot open: ") + std::strerror(errno),
                     errno == ENOENT ? "check the path" : "check the file's permissions");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(where, "not a regular file");
  }
  f.size_ = static_cast<uint64_t>(st.st_size);
  if (f.size_ < 8) {
    ::close(fd);
    throw InputError(
        where,
        "file is " + std::to_string(f.size_) + " bytes, too short for the 8-byte header length",
        "the file is truncated or not a safetensors file");
  }
  void* m = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int mapErr = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (m == MAP_FAILED) throw InputError(where, std::string("cannot map: ") + std::strerror(mapErr));
  f.map_ = static_cast<const std::byte*>(m);

  uint64_t n = 0;
  std::memcpy(&n, f.map_, 8);  // little-endian u64 (static_assert above)
  if (n > kMaxSafetensorsHeader)
    throw InputError(where,
                     "header length " + std::to_string(n) + " exceeds the format's limit of " +
                         std::to_string(kMaxSafetensorsHeader) + " bytes",
                     "the file is damaged or not a safetensors file");
  if (8 + n > f.size_)
    throw InputError(where,
                     "header length " + std::to_string(n) + " runs past the end of the file (" +
                         std::to_string(f.size_) + " bytes)",
                     "the file is truncated");
  f.headerSize_ = n;
  const std::string text(reinterpret_cast<const char*>(f.map_) + 8, n);
  if (text.empty() || text[0] != '{')
    throw InputError(where, "header does not start with '{'",
                     "the file is damaged or not a safetensors file");
  const ojson header = parseHeader(text, where);
  if (!header.is_object()) throw InputError(where, "header is not a JSON object");

  const uint64_t dataSize = f.size_ - 8 - n;
  std::vector<StTensorInfo> infos;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw InputError(where, "__metadata__ must be an object of strings, got " + value.dump());
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw InputError(where,
                           "__metadata__ " + inQuotes(mk) + " must be a string, got " + mv.dump());
        f.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    infos.push_back(parseEntry(key, value, dataSize, where));
  }

  // The tensors must tile the data buffer: sorted by offsets, each starts where the
  // previous ended, and the last ends at the end of the file.
  std::stable_sort(infos.begin(), infos.end(), [](const StTensorInfo& a, const StTensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const StTensorInfo* prev = nullptr;
  for (const auto& t : infos) {
    if (t.begin < covered)
      throw InputError(where, tensorWord(t.name) + "bytes [" + std::to_string(t.begin) + ", " +
                                  std::to_string(t.end) + ") overlap tensor " +
                                  inQuotes(prev->name) + " [" + std::to_string(prev->begin) + ", " +
                                  std::to_string(prev->end) + ")");
    if (t.begin > covered)
      throw InputError(where,
                       tensorWord(t.name) + "starts at byte " + std::to_string(t.begin) + " but " +
                           (prev ? "the previous tensor " + inQuotes(prev->name) + " ends"
                                 : std::string("the data buffer starts")) +
                           " at " + std::to_string(covered) + ": a hole of " +
                           std::to_string(t.begin - covered) + " bytes belongs to no tensor");
    covered = t.end;
    prev = &t;
  }
  if (covered != dataSize)
    throw InputError(where,
                     std::to_string(dataSize - covered) + " trailing bytes after " +
                         (prev ? "the last tensor " + inQuotes(prev->name) : "the header") +
                         ": the data buffer is " + std::to_string(dataSize) +
                         " bytes but the tensors cover " + std::to_string(covered),
                     "the file is damaged");
  for (auto& t : infos) {
    f.names_.push_back(t.name);
    f.index_.emplace(t.name, std::move(t));
  }
  return f;
}

const StTensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end())
    throw InputError(path_.string(), "no tensor named " + inQuotes(name) + " (the file has " +
                                         std::to_string(names_.size()) + " tensors)");
  return it->second;
}

std::span<const std::byte> SafetensorsFile::bytes(const std::string& name) const {
  const StTensorInfo& t = info(name);
  return {map_ + 8 + headerSize_ + t.begin, static_cast<size_t>(t.bytes())};
}

void writeSafetensors(const std::filesystem::path& path, const std::vector<StEntry>& entries,
                      const std::map<std::string, std::string>& metadata) {
  const std::string where = path.string();
  ojson header = ojson::object();
  if (!metadata.empty()) {
    ojson m = ojson::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const auto& e : entries) {
    const std::string t = tensorWord(e.name);
    if (e.name == "__metadata__") throw InputError(where, t + "the name is reserved");
    if (header.contains(e.name)) throw InputError(where, t + "given twice");
    for (int64_t d : e.shape)
      if (d < 0) throw InputError(where, t + "negative dimension in shape " + shapeText(e.shape));
    const auto need = byteCount(e.shape, dtypeSize(e.dtype));
    if (!need || static_cast<uint64_t>(*need) != e.bytes)
      throw InputError(where, t + "shape " + shapeText(e.shape) + " of " + dtypeName(e.dtype) +
                                  " does not match the " + std::to_string(e.bytes) +
                                  " bytes given");
    if (e.bytes > 0 && !e.data) throw InputError(where, t + "no data");
    header[e.name] = {{"dtype", dtypeName(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes}}};
    offset += e.bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const ojson::type_error& e) {
    throw InputError(
        where, std::string("a tensor name or metadata string is not valid UTF-8: ") + e.what());
  }
  // Pad so that the data buffer starts 8-byte aligned in the file (and in a mapping).
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxSafetensorsHeader)
    throw InputError(where, "header would be " + std::to_string(text.size()) +
                                " bytes, over the format's limit");
  const uint64_t n = text.size();
  AtomicFileWriter out(path);
  out.write(&n, 8);
  out.write(text.data(), text.size());
  for (const auto& e : entries)
    if (e.bytes > 0) out.write(e.data, e.bytes);
  out.commit();
}

}  // namespace wb
