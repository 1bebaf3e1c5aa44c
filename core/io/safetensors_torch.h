// safetensors <-> LibTorch tensors: copy a tensor out of a mapped file, view it in
// place, or save named tensors (contiguous CPU copies). The file format and all of
// its checks live in safetensors.h; nothing here parses bytes.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/io/safetensors.h"
#include "core/torch_compat.h"

namespace wb {

torch::ScalarType toScalarType(StDtype dtype);
std::optional<StDtype> fromScalarType(torch::ScalarType type);  // nullopt: no safetensors dtype

// An owned CPU tensor with the file's dtype and shape. BOOL bytes other than 0 and 1
// are an InputError (LibTorch assumes them).
torch::Tensor loadTensor(const SafetensorsFile& file, const std::string& name);

// A CPU tensor that aliases the read-only mapping (no copy): valid while `file` lives,
// and writing to it crashes. Undefined when the bytes are not aligned for the dtype or
// the dtype is BOOL (whose bytes need checking); use loadTensor then.
torch::Tensor mappedTensor(const SafetensorsFile& file, const std::string& name);

// Writes the tensors in the given order (temp file + rename). Tensors on any device and
// with any strides are copied to contiguous CPU memory first. InputError for a dtype
// safetensors cannot hold (complex, quantized) or an undefined tensor.
void saveTensors(const std::filesystem::path& path,
                 const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata = {});

}  // namespace wb
