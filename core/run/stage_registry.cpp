// Stage type lookup; see stage_registry.h.
#include "core/run/stage_registry.h"

#include <stdexcept>

namespace wb {

void StageRegistry::add(StageType type) {
  const std::string name = type.schema.name;
  if (types_.count(name)) throw std::logic_error("stage type registered twice: " + name);
  types_.emplace(name, std::move(type));
}

const StageType* StageRegistry::find(const std::string& name) const {
  auto it = types_.find(name);
  return it == types_.end() ? nullptr : &it->second;
}

std::vector<std::string> StageRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, type] : types_) out.push_back(name);
  return out;
}

}  // namespace wb
