// safetensors <-> LibTorch; see safetensors_torch.h.
#include "core/io/safetensors_torch.h"

#include <cstring>

#include "core/errors.h"

namespace wb {
namespace {

struct TypeRow {
  StDtype st;
  torch::ScalarType torch;
};
constexpr TypeRow kTypes[] = {
    {StDtype::F64, torch::kFloat64}, {StDtype::F32, torch::kFloat32},
    {StDtype::F16, torch::kFloat16}, {StDtype::BF16, torch::kBFloat16},
    {StDtype::I64, torch::kInt64},   {StDtype::I32, torch::kInt32},
    {StDtype::I16, torch::kInt16},   {StDtype::I8, torch::kInt8},
    {StDtype::U8, torch::kUInt8},    {StDtype::BOOL, torch::kBool},
};

}  // namespace

torch::ScalarType toScalarType(StDtype dtype) {
  for (const auto& r : kTypes)
    if (r.st == dtype) return r.torch;
  return torch::kFloat32;  // unreachable: every StDtype has a row
}

std::optional<StDtype> fromScalarType(torch::ScalarType type) {
  for (const auto& r : kTypes)
    if (r.torch == type) return r.st;
  return std::nullopt;
}

torch::Tensor loadTensor(const SafetensorsFile& file, const std::string& name) {
  const StTensorInfo& info = file.info(name);
  const auto bytes = file.bytes(name);
  torch::Tensor t =
      torch::empty(info.shape, torch::TensorOptions().dtype(toScalarType(info.dtype)));
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  if (info.dtype == StDtype::BOOL) {
    for (size_t i = 0; i < bytes.size(); ++i)
      if (static_cast<uint8_t>(bytes[i]) > 1)
        throw InputError(file.path().string(),
                         "tensor \"" + name + "\": BOOL byte " + std::to_string(i) + " is " +
                             std::to_string(static_cast<unsigned>(bytes[i])) + ", not 0 or 1");
  }
  return t;
}

torch::Tensor mappedTensor(const SafetensorsFile& file, const std::string& name) {
  const StTensorInfo& info = file.info(name);
  if (info.dtype == StDtype::BOOL) return {};
  const auto bytes = file.bytes(name);
  if (reinterpret_cast<uintptr_t>(bytes.data()) % dtypeSize(info.dtype) != 0) return {};
  // from_blob wants a mutable pointer; the pages are PROT_READ, so a write faults
  // instead of corrupting the file.
  return torch::from_blob(const_cast<std::byte*>(bytes.data()), info.shape,
                          torch::TensorOptions().dtype(toScalarType(info.dtype)));
}

void saveTensors(const std::filesystem::path& path,
                 const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;  // owns the contiguous copies until the write is done
  std::vector<StEntry> entries;
  keep.reserve(tensors.size());
  entries.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) throw InputError(path.string(), "tensor \"" + name + "\": undefined");
    const auto dtype = fromScalarType(t.scalar_type());
    if (!dtype)
      throw InputError(path.string(), "tensor \"" + name + "\": dtype " +
                                          std::string(c10::toString(t.scalar_type())) +
                                          " has no safetensors equivalent");
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    entries.push_back({name, *dtype, c.sizes().vec(), c.data_ptr(), c.nbytes()});
    keep.push_back(std::move(c));
  }
  writeSafetensors(path, entries, metadata);
}

}  // namespace wb
