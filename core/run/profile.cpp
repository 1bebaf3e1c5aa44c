// Profile parsing and serialization; the defaults tables of the root, device,
// model and data sections live here, the stages' tables in their registry.
#include "core/run/profile.h"

#include <fstream>
#include <set>
#include <sstream>

#include "core/model/gpt2_config.h"
#include "core/parallel/parallel_spec.h"
#include "core/run/schema.h"
#include "core/run/stage_registry.h"

namespace wb {
namespace {

using nlohmann::json;

const SectionSpec& rootSection() {
  static const SectionSpec s{
      "profile",
      "A run profile",
      {{"schema", FieldKind::Int, 1, "Profile schema version (only 1 exists)", 1, 1, {}, true},
       {"name", FieldKind::String, nullptr, "Run name, used in the run directory's name", {}, {},
        {}, true},
       {"seed", FieldKind::Int, 1337, "Seed for weights, data order, dropout and sampling", 0, {}},
       {"device", FieldKind::Object, json::object(), "Where and in which precision to run"},
       {"model", FieldKind::Object, nullptr, "The model to start from", {}, {}, {}, true},
       {"data", FieldKind::Object, json::object(), "Token data for training and evaluation"},
       {"parallel", FieldKind::Object, json::object(), "Pipeline and data parallelism for training"},
       {"stages", FieldKind::ObjectList, nullptr, "The stages, run in order", {}, {}, {}, true}}};
  return s;
}

}  // namespace

const SectionSpec& deviceSection() {
  static const SectionSpec s{
      "device",
      "Compute device",
      {{"type", FieldKind::String, "cpu", "cpu or cuda", {}, {}, {"cpu", "cuda"}},
       {"gpus", FieldKind::IntList, json::array({0}), "CUDA device indices", 0, {}},
       {"dtype", FieldKind::String, "fp32", "Compute precision", {}, {}, {"fp32", "bf16", "fp16"}},
       {"threads", FieldKind::Int, 0, "CPU threads for LibTorch (0: all cores)", 0, 1024}}};
  return s;
}

const SectionSpec& modelSection() {
  static const SectionSpec s{
      "model",
      "Model source",
      {{"source", FieldKind::String, nullptr,
        "hf:NAME (Hugging Face cache), a folder with config.json + model.safetensors, or "
        "\"config\" for fresh seeded weights",
        {}, {}, {}, true},
       {"config", FieldKind::Object, nullptr,
        "GPT-2 config.json keys, with source \"config\" (n_layer, n_head, n_embd, ...)"},
       {"attention", FieldKind::String, "math",
        "Attention backend of every stage's forward passes: math (reference), flash (chunked online softmax on "
        "the CPU, O(T) memory; no attention dropout), sdpa (LibTorch >= 2)",
        {}, {}, {"math", "flash", "sdpa"}}}};
  return s;
}

const SectionSpec& dataSection() {
  static const SectionSpec s{
      "data",
      "Token data",
      {{"train", FieldKind::String, "", "uint16 token file (nanoGPT .bin) for training"},
       {"val", FieldKind::String, "", "uint16 token file for validation"},
       {"text", FieldKind::StringList, json::array(),
        "Text files (or asset:moby-dick) tokenized on first use instead of train/val"},
       {"val_fraction", FieldKind::Number, 0.1, "Share of text tokens held out for validation",
        0.001, 0.5},
       {"seq_len", FieldKind::Int, 256, "Tokens per training sequence", 1, 1 << 20}}};
  return s;
}

const SectionSpec& parallelSection() {
  static const SectionSpec s{
      "parallel",
      "Multi-device training: pipeline stages (GPipe / 1F1B) and data-parallel replicas",
      {{"pipeline_stages", FieldKind::Int, 1, "Pipeline stages the GPT-2 blocks are split into", 1, 1024},
       {"micro_batches", FieldKind::Int, 1, "Micro-batches per batch (batch_size must divide)", 1, 65536},
       {"schedule", FieldKind::String, "1f1b", "Pipeline schedule", {}, {}, {"1f1b", "gpipe"}},
       {"data_parallel", FieldKind::Int, 1, "Data-parallel replicas of the pipeline", 1, 1024},
       {"balance", FieldKind::NumberList, json::array(),
        "Layers per stage; 0.5 steps split a block between attention and MLP (empty: balanced by parameter count)",
        0.5, {}},
       {"checkpoint", FieldKind::Bool, false,
        "Activation checkpointing: recompute each stage's forward in backward"}}};
  return s;
}

ProfileError::ProfileError(std::string file, std::string pointer, const std::string& message,
                           int line, int column)
    : InputError(
          [&] {
            std::string where = file;
            if (line > 0)
              where += (where.empty() ? "" : ":") + std::to_string(line) + ":" +
                       std::to_string(column);
            if (!pointer.empty()) where += (where.empty() ? "" : ": ") + pointer;
            return where;
          }(),
          message),
      file_(std::move(file)),
      pointer_(std::move(pointer)),
      detail_(message),
      line_(line),
      column_(column) {}

std::pair<int, int> lineColumnAt(std::string_view text, size_t offset) {
  int line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      ++column;  // count UTF-8 code points, not bytes
    }
  }
  return {line, column};
}

Profile parseProfileText(std::string_view text, const std::string& sourceName,
                     const StageRegistry& registry) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann's byte is 1-based and points just past the offending character.
    const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    auto [line, column] = lineColumnAt(text, offset);
    std::string what = e.what();
    if (auto pos = what.find("syntax error"); pos != std::string::npos) what = what.substr(pos);
    throw ProfileError(sourceName, {}, "invalid JSON: " + what, line, column);
  }
  return parseProfile(root, sourceName, registry);
}

Profile parseProfile(const json& rootIn, const std::string& sourceName,
                     const StageRegistry& registry) {
  try {
    const json root = validateSection(rootIn, rootSection(), "");
    Profile p;
    p.schema = root["schema"].get<int>();
    p.name = root["name"].get<std::string>();
    if (p.name.empty() || p.name.find_first_of("/\\") != std::string::npos)
      throw ProfileError({}, "/name", "expected a non-empty name without slashes");
    p.seed = root["seed"].get<uint64_t>();

    const json dev = validateSection(root["device"], deviceSection(), "/device");
    p.device.type = dev["type"];
    p.device.gpus = dev["gpus"].get<std::vector<int>>();
    p.device.dtype = dev["dtype"];
    p.device.threads = dev["threads"];

    const json model = validateSection(root["model"], modelSection(), "/model");
    p.model.source = model["source"];
    p.model.attention = model["attention"];
    if (p.model.source.empty()) throw ProfileError({}, "/model/source", "expected a model source");
    if (p.model.source == "config") {
      if (!model.contains("config"))
        throw ProfileError({}, "/model/config", "missing required field with source \"config\"");
      p.model.config = model["config"];
      Gpt2Config::fromJson(p.model.config, "/model/config", true);
    } else if (model.contains("config")) {
      throw ProfileError({}, "/model/config", "only allowed with source \"config\"");
    }

    const json data = validateSection(root["data"], dataSection(), "/data");
    p.data.train = data["train"];
    p.data.val = data["val"];
    p.data.text = data["text"].get<std::vector<std::string>>();
    p.data.valFraction = data["val_fraction"];
    p.data.seqLen = data["seq_len"];
    if (!p.data.text.empty() && (!p.data.train.empty() || !p.data.val.empty()))
      throw ProfileError({}, "/data/text", "give either text or train/val token files, not both");

    const json par = validateSection(root["parallel"], parallelSection(), "/parallel");
    p.parallel.pipelineStages = par["pipeline_stages"];
    p.parallel.microBatches = par["micro_batches"];
    p.parallel.schedule = par["schedule"];
    p.parallel.dataParallel = par["data_parallel"];
    p.parallel.balance = par["balance"].get<std::vector<double>>();
    p.parallel.checkpoint = par["checkpoint"];

    const json& stages = root["stages"];
    if (!stages.is_array() || stages.empty())
      throw ProfileError({}, "/stages", "expected a non-empty list of stages, got " + stages.dump());
    std::set<std::string> names;
    for (size_t i = 0; i < stages.size(); ++i) {
      const std::string ptr = "/stages/" + std::to_string(i);
      const json& s = stages[i];
      if (!s.is_object()) throw ProfileError({}, ptr, "expected an object, got " + s.dump());
      if (!s.contains("type") || !s["type"].is_string())
        throw ProfileError({}, ptr + "/type", "missing stage type (a string)");
      const std::string type = s["type"];
      const StageType* st = registry.find(type);
      if (!st) {
        std::string known;
        for (const auto& n : registry.names()) known += (known.empty() ? "" : ", ") + n;
        throw ProfileError({}, ptr + "/type", "unknown stage type \"" + type + "\" (known: " +
                                                  known + ")");
      }
      json params = s;
      params.erase("type");
      std::string name = type;
      if (params.contains("name")) {
        if (!params["name"].is_string() || params["name"].get<std::string>().empty())
          throw ProfileError({}, ptr + "/name", "expected a non-empty string, got " +
                                                    params["name"].dump());
        name = params["name"];
        params.erase("name");
      }
      if (names.count(name)) {
        if (s.contains("name"))
          throw ProfileError({}, ptr + "/name", "duplicate stage name \"" + name + "\"");
        name += "-" + std::to_string(i);
      }
      names.insert(name);
      p.stages.push_back({type, name, validateSection(params, st->schema, ptr)});
    }
    checkParallelProfile(p);
    return p;
  } catch (const ProfileError& e) {
    if (!e.file().empty() || sourceName.empty()) throw;
    throw ProfileError(sourceName, e.pointer(), e.detail(), e.line(), e.column());
  }
}

Profile loadProfile(const std::filesystem::path& path, const StageRegistry& registry) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), "cannot open the profile", "check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  return parseProfileText(ss.str(), path.string(), registry);
}

json toJson(const Profile& p) {
  json j;
  j["schema"] = p.schema;
  j["name"] = p.name;
  j["seed"] = p.seed;
  j["device"] = {{"type", p.device.type},
                 {"gpus", p.device.gpus},
                 {"dtype", p.device.dtype},
                 {"threads", p.device.threads}};
  j["model"] = {{"source", p.model.source}, {"attention", p.model.attention}};
  if (!p.model.config.is_null()) j["model"]["config"] = p.model.config;
  j["data"] = {{"train", p.data.train},   {"val", p.data.val},
               {"text", p.data.text},     {"val_fraction", p.data.valFraction},
               {"seq_len", p.data.seqLen}};
  j["parallel"] = {{"pipeline_stages", p.parallel.pipelineStages},
                   {"micro_batches", p.parallel.microBatches},
                   {"schedule", p.parallel.schedule},
                   {"data_parallel", p.parallel.dataParallel},
                   {"balance", p.parallel.balance},
                   {"checkpoint", p.parallel.checkpoint}};
  j["stages"] = json::array();
  for (const auto& s : p.stages) {
    json st = {{"type", s.type}, {"name", s.name}};
    for (const auto& [k, v] : s.params.items()) st[k] = v;
    j["stages"].push_back(st);
  }
  return j;
}

}  // namespace wb
