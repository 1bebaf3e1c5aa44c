// Locating a HF folder's safetensors weights; see hf_weight_files.h.
#include "core/io/hf_weight_files.h"

#include <algorithm>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace wb {
namespace fs = std::filesystem;

namespace {

const char* const kConvertHint =
    "pickle files can run arbitrary code when loaded, so they are never read here. Convert once "
    "on a machine you trust: python -c \"import torch; from safetensors.torch import save_file; "
    "sd = torch.load('pytorch_model.bin', map_location='cpu', weights_only=True); "
    "sd.pop('lm_head.weight', None); "
    "save_file({k: v.contiguous() for k, v in sd.items()}, 'model.safetensors', "
    "metadata={'format': 'pt'})\" (the pop drops a tied LM head, which save_file refuses as "
    "shared memory; keep it for untied models), or with transformers: "
    "AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)";

bool isPickleName(const std::string& name) {
  for (const char* ext : {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
    if (name.ends_with(ext)) return true;
  return name == "pytorch_model.bin.index.json";
}

// A shard must be a file beside the index: no folders, no way out of the model folder.
bool isPlainShardName(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.ends_with(".safetensors");
}

}  // namespace

uint64_t HfWeightFiles::totalBytes() const {
  uint64_t total = 0;
  for (const auto& f : files) {
    std::error_code ec;
    const auto n = fs::file_size(f, ec);
    if (!ec) total += n;
  }
  return total;
}

std::vector<fs::path> findPickleWeightFiles(const fs::path& folder) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder, ec))
    if (isPickleName(e.path().filename().string())) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

HfWeightFiles findHfWeightFiles(const fs::path& folder) {
  HfWeightFiles w;
  if (!fs::is_directory(folder))
    throw InputError(folder.string(), "not a folder", "give a model folder or hf:NAME");
  if (fs::is_regular_file(folder / kHfWeightsFile)) {
    w.files.push_back(folder / kHfWeightsFile);
    return w;
  }
  const fs::path index = folder / kHfIndexFile;
  if (!fs::is_regular_file(index)) {
    const auto pickles = findPickleWeightFiles(folder);
    if (!pickles.empty())
      throw InputError(pickles.front().string(),
                       "this model folder has only pickle weights (" +
                           pickles.front().filename().string() + "), which are refused",
                       kConvertHint);
    throw InputError(folder.string(),
                     std::string("no ") + kHfWeightsFile + " or " + kHfIndexFile + " in the folder",
                     "a Hugging Face GPT-2 folder holds config.json and model.safetensors");
  }

  w.index = index;
  const std::string where = index.string();
  std::ifstream in(index, std::ios::binary);
  if (!in) throw InputError(where, "cannot open the shard index");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw InputError(where, "not a JSON object");
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    throw InputError(where, "missing the \"weight_map\" object (tensor name -> shard file)");
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : j["weight_map"].items()) {
    if (!shard.is_string() || !isPlainShardName(shard.get<std::string>()))
      throw InputError(where, "weight_map/" + tensor + ": " + shard.dump() +
                                  " is not a .safetensors file name in this folder");
    w.weightMap[tensor] = shard.get<std::string>();
    shards.insert(shard.get<std::string>());
  }
  if (w.weightMap.empty()) throw InputError(where, "weight_map is empty");
  for (const auto& s : shards) {
    if (!fs::is_regular_file(folder / s))
      throw InputError(where, "shard " + s + " is missing",
                       "copy every shard the index names into the folder");
    w.files.push_back(folder / s);
  }
  return w;
}

}  // namespace wb
