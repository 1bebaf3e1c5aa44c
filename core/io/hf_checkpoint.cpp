// HF GPT-2 checkpoint load/save; see hf_checkpoint.h.
#include "core/io/hf_checkpoint.h"

#include <chrono>
#include <map>
#include <memory>
#include <sstream>

#include "core/errors.h"
#include "core/io/atomic_file.h"
#include "core/io/hf_weight_files.h"
#include "core/io/safetensors_torch.h"
#include "core/model/gpt2.h"

namespace wb {
namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "transformer.";

// The name without the "transformer." prefix: HF files exist both ways (GPT2Model
// checkpoints and old GPT2LMHeadModel ones drop it).
std::string canonical(const std::string& key) {
  return key.starts_with(kPrefix) ? key.substr(std::string(kPrefix).size()) : key;
}

// HF keeps the causal mask as buffers named attn.bias / attn.masked_bias in old files.
bool isAttentionMaskBuffer(const std::string& key) {
  return key.ends_with(".attn.bias") || key.ends_with(".attn.masked_bias");
}

std::string shapeText(c10::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

std::string listSome(const std::vector<std::string>& names) {
  constexpr size_t kShown = 5;
  std::string s;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kShown) s += ", ...";
  return s + " (" + std::to_string(names.size()) + " in all)";
}

struct Param {
  std::string canonical, name;
  torch::Tensor tensor;
};

struct FileTensor {
  const SafetensorsFile* file;
  std::string key;  // as spelled in the file
};

}  // namespace

void loadHfWeights(torch::nn::Module& model, const fs::path& folder) {
  const HfWeightFiles weights = findHfWeightFiles(folder);
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, FileTensor> inFile;  // canonical name -> where it is
  for (const auto& path : weights.files) {
    files.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(path)));
    const SafetensorsFile& f = *files.back();
    const std::string shard = path.filename().string();
    for (const auto& key : f.names()) {
      if (!weights.index.empty()) {
        const auto it = weights.weightMap.find(key);
        if (it == weights.weightMap.end() || it->second != shard)
          throw InputError(weights.index.string(),
                           "tensor \"" + key + "\" is in shard " + shard + " but the weight_map " +
                               (it == weights.weightMap.end() ? "does not list it"
                                                              : "puts it in " + it->second));
      }
      const auto [it, fresh] = inFile.emplace(canonical(key), FileTensor{&f, key});
      if (!fresh)
        throw InputError(path.string(), "tensor \"" + key + "\" duplicates \"" + it->second.key +
                                            "\" in " + it->second.file->path().string());
    }
  }
  if (!weights.index.empty())
    for (const auto& [key, shard] : weights.weightMap) {
      const bool found = inFile.count(canonical(key)) && inFile.at(canonical(key)).key == key;
      if (!found)
        throw InputError(weights.index.string(),
                         "weight_map lists \"" + key + "\" in " + shard + ", which lacks it");
    }

  // In model order, so that messages list wte before h.0 before ln_f.
  std::vector<Param> params;
  std::map<std::string, size_t> paramIndex;  // canonical name -> position in params
  for (const auto& item : model.named_parameters(true)) {
    const std::string name = canonical(item.key());
    if (!paramIndex.emplace(name, params.size()).second)
      throw RunError(item.key(), "two model parameters share the checkpoint name " + name);
    params.push_back({name, item.key(), item.value()});
  }

  std::vector<std::string> missing, unexpected;
  for (const auto& p : params)
    if (!inFile.count(p.canonical)) missing.push_back(p.name);
  for (const auto& [name, ft] : inFile) {
    if (paramIndex.count(name)) continue;
    // A tied model has no lm_head parameter: the file's copy of wte is redundant.
    if (name == "lm_head.weight" || isAttentionMaskBuffer(name)) continue;
    unexpected.push_back(ft.key);
  }
  if (!missing.empty() || !unexpected.empty()) {
    std::string msg, hint =
                         "is the config.json the one these weights were trained with "
                         "(n_layer, n_embd, vocab_size)?";
    if (!missing.empty()) msg = "the checkpoint lacks model parameters: " + listSome(missing);
    if (!unexpected.empty())
      msg += std::string(msg.empty() ? "" : "; ") +
             "the checkpoint has tensors the model does not: " + listSome(unexpected);
    if (paramIndex.count("lm_head.weight") && !inFile.count("lm_head.weight"))
      hint =
          "the model has an untied lm_head (tie_word_embeddings false), so the checkpoint "
          "must hold lm_head.weight";
    throw InputError(folder.string(), msg, hint);
  }

  for (const auto& p : params) {
    const FileTensor& ft = inFile.at(p.canonical);
    const StTensorInfo& info = ft.file->info(ft.key);
    const torch::Tensor& param = p.tensor;
    if (info.shape != param.sizes().vec())
      throw InputError(ft.file->path().string(),
                       "tensor \"" + ft.key + "\" has shape " + shapeText(info.shape) +
                           ", the model" + (p.name == ft.key ? "" : "'s " + p.name) + " expects " +
                           shapeText(param.sizes()),
                       "GPT-2 stores Conv1D weights as [in, out]; check n_embd, n_inner, "
                       "vocab_size and n_positions in config.json");
    const bool fileFloat = info.dtype == StDtype::F64 || info.dtype == StDtype::F32 ||
                           info.dtype == StDtype::F16 || info.dtype == StDtype::BF16;
    if (param.is_floating_point() && !fileFloat)
      throw InputError(ft.file->path().string(), "tensor \"" + ft.key + "\" is " +
                                                     dtypeName(info.dtype) + ", the model" +
                                                     (p.name == ft.key ? "" : "'s " + p.name) +
                                                     " needs floating-point values");
  }

  torch::NoGradGuard noGrad;
  for (auto& p : params) {
    const FileTensor& ft = inFile.at(p.canonical);
    torch::Tensor src = mappedTensor(*ft.file, ft.key);
    if (!src.defined()) src = loadTensor(*ft.file, ft.key);
    p.tensor.copy_(src);  // converts dtype and moves to the parameter's device
  }
}

void saveHfCheckpoint(const torch::nn::Module& model, const nlohmann::json& config,
                      const fs::path& folder) {
  if (!config.is_object()) throw InputError(folder.string(), "config must be a JSON object");
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw RunError(folder.string(), "cannot create the folder: " + ec.message());
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model.named_parameters(true)) {
    const std::string name = canonical(item.key());
    tensors.emplace_back(name.starts_with("lm_head.") ? name : kPrefix + name, item.value());
  }
  saveTensors(folder / kHfWeightsFile, tensors, {{"format", "pt"}});
  writeFileAtomic(folder / "config.json", config.dump(2) + "\n");
}

Gpt2LoadCheck checkGpt2Folder(const fs::path& folder) {
  const auto t0 = std::chrono::steady_clock::now();
  Gpt2 model(Gpt2Config::fromFile((folder / "config.json").string()));
  loadHfWeights(*model, folder);
  Gpt2LoadCheck c;
  c.tensors = static_cast<int64_t>(model->named_parameters().size());
  c.parameters = model->parameterCount();
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return c;
}

}  // namespace wb
