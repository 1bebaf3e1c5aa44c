// A run profile (schema 1, DESIGN.md §4): parsed from JSON, validated against the
// defaults tables, serialized back. Errors carry the JSON pointer of the field, or
// the line and column of a syntax error. Torch-free: the GUI includes this.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/run/schema.h"

namespace wb {

class StageRegistry;

class ProfileError : public InputError {
 public:
  ProfileError(std::string file, std::string pointer, const std::string& message, int line = 0,
               int column = 0);
  const std::string& file() const { return file_; }
  const std::string& pointer() const { return pointer_; }  // "" for syntax errors
  int line() const { return line_; }                       // 0 when not a syntax error
  int column() const { return column_; }
  const std::string& detail() const { return detail_; }  // message without file/pointer

 private:
  std::string file_, pointer_, detail_;
  int line_, column_;
};

struct DeviceSpec {
  std::string type = "cpu";  // "cpu" | "cuda"
  std::vector<int> gpus;
  std::string dtype = "fp32";  // "fp32" | "bf16" | "fp16"
  int threads = 0;             // CPU threads for LibTorch; 0 = all cores
};

struct ModelSpec {
  std::string source;     // "hf:NAME", a folder path, or "config"
  nlohmann::json config;  // HF-style config.json keys when source == "config"
  std::string attention = "math";  // the model's attention backend: math, flash, sdpa
};

struct DataSpec {
  std::string train;              // nanoGPT uint16 .bin
  std::string val;                // nanoGPT uint16 .bin
  std::vector<std::string> text;  // or text files / "asset:moby-dick", tokenized on first use
  double valFraction = 0.1;
  int64_t seqLen = 256;
};

// Multi-device training (issue 8). pipeline_stages > 1 makes the train stage use the
// pipeline trainer (core/parallel/); checks against the model and batch size live in
// core/parallel/parallel_spec.h.
struct ParallelSpec {
  int pipelineStages = 1;
  int64_t microBatches = 1;
  std::string schedule = "1f1b";  // "1f1b" | "gpipe"
  int dataParallel = 1;
  std::vector<double> balance;  // layers per stage, halves allowed; empty: balanced by parameter count
  bool checkpoint = false;       // recompute each stage's activations in backward
  bool pipelined() const { return pipelineStages > 1; }
};

struct StageSpec {
  std::string type;
  std::string name;       // unique within the profile; defaults to the type
  nlohmann::json params;  // every key of the stage's table, defaults filled in
};

struct Profile {
  int schema = 1;
  std::string name;
  uint64_t seed = 1337;
  DeviceSpec device;
  ModelSpec model;
  DataSpec data;
  ParallelSpec parallel;
  std::vector<StageSpec> stages;
};

// `sourceName` names the file in messages ("<memory>" when there is none).
Profile parseProfileText(std::string_view text, const std::string& sourceName,
                     const StageRegistry& registry);
Profile parseProfile(const nlohmann::json& root, const std::string& sourceName,
                     const StageRegistry& registry);
Profile loadProfile(const std::filesystem::path& path, const StageRegistry& registry);
nlohmann::json toJson(const Profile& profile);

// The defaults tables of the profile's sections (stages: see StageRegistry).
const SectionSpec& deviceSection();
const SectionSpec& modelSection();
const SectionSpec& dataSection();
const SectionSpec& parallelSection();

// Line and column (1-based) of a byte offset, for syntax errors.
std::pair<int, int> lineColumnAt(std::string_view text, size_t offset);

}  // namespace wb
