// Which files hold the weights of a Hugging Face model folder: model.safetensors, or
// the shards named by model.safetensors.index.json. Torch-free, so the model catalog
// can size a model without LibTorch. Pickle checkpoints (pytorch_model.bin, *.pt) are
// never opened: a folder that has only those is refused with a way to convert it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace wb {

inline constexpr const char* kHfWeightsFile = "model.safetensors";
inline constexpr const char* kHfIndexFile = "model.safetensors.index.json";

struct HfWeightFiles {
  std::vector<std::filesystem::path> files;      // model.safetensors, or every shard (sorted)
  std::filesystem::path index;                   // the index file; empty when not sharded
  std::map<std::string, std::string> weightMap;  // sharded only: tensor -> shard file name

  uint64_t totalBytes() const;  // the files' sizes on disk
};

// Throws InputError (where = the folder or the index file) when there are no
// safetensors weights, when only pickle weights exist, or when the index is malformed
// or names a shard that is missing.
HfWeightFiles findHfWeightFiles(const std::filesystem::path& folder);

// The pickle weight files in `folder` (pytorch_model.bin, *.pt, ...), for messages.
std::vector<std::filesystem::path> findPickleWeightFiles(const std::filesystem::path& folder);

}  // namespace wb
