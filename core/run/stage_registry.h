// Stage types by name: each has a defaults table (for the profile parser, GUI forms
// and --help) and a factory. The built-in GPT-2 stages are registered in one place
// (core/stages/builtin_stages.cpp); tests may build their own registry.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/run/schema.h"

namespace wb {

class StageContext;

class Stage {
 public:
  virtual ~Stage() = default;
  // Runs to completion on the calling thread; polls ctx.cancel at every step.
  virtual void run(StageContext& ctx) = 0;
};

struct StageType {
  SectionSpec schema;  // schema.name is the type name used in profiles
  std::function<std::unique_ptr<Stage>()> create;
};

class StageRegistry {
 public:
  void add(StageType type);
  const StageType* find(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, StageType> types_;
};

// The registry with every built-in stage type (train, eval, generate, ...).
const StageRegistry& builtinStages();

}  // namespace wb
