// LoRA adapters on Conv1D and peft's file format; see lora.h.
#include "core/techniques/lora.h"

#include <cmath>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/io/atomic_file.h"
#include "core/io/safetensors_torch.h"

namespace wb {
namespace {

const char* const kPeftPrefix = "base_model.model.";

// Conv1D layers of one GPT-2 block, relative to transformer.h.<i>, with [in, out].
std::vector<std::tuple<std::string, int64_t, int64_t>> blockConv1Ds(const Gpt2Config& c) {
  return {{"attn.c_attn", c.nEmbd, 3 * c.nEmbd},
          {"attn.c_proj", c.nEmbd, c.nEmbd},
          {"mlp.c_fc", c.nEmbd, c.innerDim()},
          {"mlp.c_proj", c.innerDim(), c.nEmbd}};
}

}  // namespace

double LoraOptions::scale() const {
  return rsLora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

bool loraTargetMatches(const std::string& name, const std::vector<std::string>& targets) {
  for (const auto& t : targets)
    if (name == t || name.ends_with("." + t)) return true;
  return false;
}

int64_t loraParameterCount(const Gpt2Config& c, const std::vector<std::string>& targets, int64_t rank) {
  int64_t n = 0;
  for (int64_t i = 0; i < c.nLayer; ++i)
    for (const auto& [suffix, in, out] : blockConv1Ds(c))
      if (loraTargetMatches("transformer.h." + std::to_string(i) + "." + suffix, targets))
        n += rank * (in + out);
  return n;
}

LoraLayer::LoraLayer(int64_t in, int64_t out, const LoraOptions& o, const torch::TensorOptions& t)
    : scale(o.scale()), dropout(o.dropout) {
  // peft: kaiming_uniform_(a = sqrt(5)) on lora_A.weight [r, in], i.e. U(-1/sqrt(in), 1/sqrt(in)).
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  a = torch::empty({in, o.rank}, t).uniform_(-bound, bound).set_requires_grad(true);
  b = torch::zeros({o.rank, out}, t).set_requires_grad(true);
}

torch::Tensor LoraLayer::forward(const torch::Tensor& x, bool training) {
  const auto h = training && dropout > 0 ? torch::dropout(x, dropout, true) : x;
  return torch::matmul(torch::matmul(h, a), b) * scale;
}

torch::Tensor LoraLayer::delta() const { return torch::matmul(a, b) * scale; }

TrainingMemory trainingMemory(torch::nn::Module& model, const NamedTensors& trainable,
                              const NamedTensors& extraWeights) {
  TrainingMemory m;
  auto bytes = [](const torch::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); };
  for (const auto& p : model.parameters()) m.weights += bytes(p);
  for (const auto& [name, t] : extraWeights) m.weights += bytes(t);
  for (const auto& [name, t] : trainable) {
    m.gradients += bytes(t);
    m.optimizerState += 2 * bytes(t);
  }
  return m;
}

LoraModel::LoraModel(Gpt2 model, LoraOptions options) : model_(std::move(model)), options_(std::move(options)) {
  if (options_.rank < 1) throw InputError("lora/rank", "rank must be >= 1");
  if (options_.targets.empty()) throw InputError("lora/targets", "no target modules given");
  std::set<std::string> used;
  const auto t = torch::TensorOptions().dtype(torch::kFloat32).device(model_->parameters().front().device());
  for (const auto& item : model_->named_modules()) {
    if (!loraTargetMatches(item.key(), options_.targets)) continue;
    auto* conv = item.value()->as<Conv1DImpl>();
    if (!conv)
      throw InputError("lora/targets", "module " + item.key() + " is not a Conv1D",
                       "LoRA applies to c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj");
    for (const auto& tg : options_.targets)
      if (loraTargetMatches(item.key(), {tg})) used.insert(tg);
    auto layer = std::make_shared<LoraLayer>(conv->weight.size(0), conv->weight.size(1), options_, t);
    sites_.push_back({item.key(), Conv1D(std::dynamic_pointer_cast<Conv1DImpl>(item.value())), layer});
  }
  for (const auto& tg : options_.targets)
    if (!used.count(tg))
      throw InputError("lora/targets", "target \"" + tg + "\" matches no module",
                       "use c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj (or c_proj for both)");
  // Only after every check, so a bad target leaves the model untouched.
  for (auto& p : model_->parameters()) {
    baseFlags_.push_back(p.requires_grad());
    p.set_requires_grad(false);
  }
  for (auto& s : sites_) s.conv->adapter = s.layer;
}

LoraModel::~LoraModel() {
  auto params = model_->parameters();
  for (size_t i = 0; i < params.size() && i < baseFlags_.size(); ++i)
    params[i].set_requires_grad(baseFlags_[i]);
}

NamedTensors LoraModel::parameters() const {
  NamedTensors out;
  for (const auto& s : sites_) {
    out.emplace_back(s.name + ".lora_A", s.layer->a);
    out.emplace_back(s.name + ".lora_B", s.layer->b);
  }
  return out;
}

int64_t LoraModel::trainableParameterCount() const {
  int64_t n = 0;
  for (const auto& [name, t] : parameters()) n += t.numel();
  return n;
}

int64_t LoraModel::optimizerStateBytes() const {
  return 2 * trainableParameterCount() * static_cast<int64_t>(sizeof(float));
}

std::vector<std::string> LoraModel::moduleNames() const {
  std::vector<std::string> names;
  for (const auto& s : sites_) names.push_back(s.name);
  return names;
}

void LoraModel::merge() {
  if (merged_) return;
  torch::NoGradGuard noGrad;
  for (auto& s : sites_) {
    s.conv->weight.add_(s.layer->delta().to(s.conv->weight.dtype()));
    s.conv->adapter = nullptr;
  }
  merged_ = true;
}

void LoraModel::unmerge() {
  if (!merged_) return;
  torch::NoGradGuard noGrad;
  for (auto& s : sites_) {
    s.conv->weight.sub_(s.layer->delta().to(s.conv->weight.dtype()));
    if (!detached_) s.conv->adapter = s.layer;
  }
  merged_ = false;
}

void LoraModel::detach() {
  for (auto& s : sites_) s.conv->adapter = nullptr;
  detached_ = true;
}

void LoraModel::save(const std::filesystem::path& folder, const std::string& baseModelName) const {
  std::filesystem::create_directories(folder);
  nlohmann::json cfg = {{"peft_type", "LORA"},
                        {"task_type", "CAUSAL_LM"},
                        {"r", options_.rank},
                        {"lora_alpha", options_.alpha},
                        {"lora_dropout", options_.dropout},
                        {"target_modules", options_.targets},
                        {"fan_in_fan_out", true},
                        {"bias", "none"},
                        {"use_rslora", options_.rsLora},
                        {"use_dora", false},
                        {"inference_mode", true},
                        {"init_lora_weights", true},
                        {"modules_to_save", nullptr},
                        {"layers_to_transform", nullptr},
                        {"layers_pattern", nullptr},
                        {"rank_pattern", nlohmann::json::object()},
                        {"alpha_pattern", nlohmann::json::object()},
                        {"base_model_name_or_path", baseModelName},
                        {"revision", nullptr}};
  NamedTensors tensors;
  for (const auto& s : sites_) {
    const std::string key = kPeftPrefix + s.name;
    tensors.emplace_back(key + ".lora_A.weight", s.layer->a.detach().t().to(torch::kFloat32).contiguous());
    tensors.emplace_back(key + ".lora_B.weight", s.layer->b.detach().t().to(torch::kFloat32).contiguous());
  }
  saveTensors(folder / "adapter_model.safetensors", tensors, {{"format", "pt"}});
  writeFileAtomic(folder / "adapter_config.json", cfg.dump(2) + "\n");
}

std::unique_ptr<LoraModel> LoraModel::load(Gpt2 model, const std::filesystem::path& folder) {
  const auto cfgPath = folder / "adapter_config.json";
  const std::string where = cfgPath.string();
  std::ifstream in(cfgPath);
  if (!in) throw InputError(where, "cannot open", "a peft adapter folder holds adapter_config.json");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(where, std::string("not valid JSON: ") + e.what());
  }
  auto get = [&](const char* key, auto fallback) {
    return cfg.contains(key) && !cfg[key].is_null() ? cfg[key].get<decltype(fallback)>() : fallback;
  };
  if (get("peft_type", std::string()) != "LORA")
    throw InputError(where, "peft_type is not LORA", "only LoRA adapters are supported");
  if (get("use_dora", false)) throw InputError(where, "DoRA adapters are not supported");
  if (get("bias", std::string("none")) != "none")
    throw InputError(where, "bias \"" + cfg["bias"].get<std::string>() + "\" is not supported",
                     "only adapters trained with bias=\"none\" load");
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    if (cfg.contains(key) && !cfg[key].is_null() && !cfg[key].empty())
      throw InputError(where, std::string(key) + " is not supported (one rank and alpha for all modules)");
  for (const char* key : {"layers_to_transform", "modules_to_save"})
    if (cfg.contains(key) && !cfg[key].is_null())
      throw InputError(where, std::string(key) + " is not supported");
  LoraOptions o;
  o.rank = get("r", int64_t(8));
  o.alpha = get("lora_alpha", 8.0);
  o.dropout = get("lora_dropout", 0.0);
  o.rsLora = get("use_rslora", false);
  if (!cfg.contains("target_modules") || !cfg["target_modules"].is_array())
    throw InputError(where, "target_modules must be a list of module names",
                     "regex target_modules are not supported");
  o.targets = cfg["target_modules"].get<std::vector<std::string>>();

  auto lora = std::make_unique<LoraModel>(model, o);
  try {
    lora->copyFromPeftFile(folder / "adapter_model.safetensors");
  } catch (...) {
    lora->detach();  // a failed load leaves the model as it was
    throw;
  }
  return lora;
}

void LoraModel::copyFromPeftFile(const std::filesystem::path& path) {
  const int64_t rank = options_.rank;
  const auto file = SafetensorsFile::open(path);
  std::set<std::string> expected;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> loaded;
  for (const auto& s : sites_) {
    const std::string key = kPeftPrefix + s.name;
    torch::Tensor pair[2];
    const std::vector<int64_t> shapes[2] = {{rank, s.layer->a.size(0)}, {s.layer->b.size(1), rank}};
    const char* names[2] = {".lora_A.weight", ".lora_B.weight"};
    for (int k = 0; k < 2; ++k) {
      const std::string name = key + names[k];
      expected.insert(name);
      if (!file.contains(name))
        throw InputError(file.path().string(), "tensor " + name + " is missing",
                         "was the adapter trained on a model with the same layers and targets?");
      pair[k] = loadTensor(file, name);
      if (pair[k].sizes().vec() != shapes[k])
        throw InputError(file.path().string(), "tensor " + name + " has shape " +
                                                   c10::str(pair[k].sizes()) + ", expected " +
                                                   c10::str(c10::IntArrayRef(shapes[k])));
    }
    loaded.emplace_back(pair[0], pair[1]);
  }
  for (const auto& name : file.names())
    if (!expected.count(name))
      throw InputError(file.path().string(), "unexpected tensor " + name,
                       "only lora_A/lora_B weights of the configured target modules load");
  torch::NoGradGuard noGrad;
  for (size_t i = 0; i < loaded.size(); ++i) {
    auto& layer = *sites_[i].layer;
    layer.a.copy_(loaded[i].first.t());
    layer.b.copy_(loaded[i].second.t());
  }
}

}  // namespace wb
