// The one place where built-in stage types are registered.
#include "core/run/stage_registry.h"

namespace wb {

const StageRegistry& builtinStages() {
  static const StageRegistry registry = [] {
    StageRegistry r;
    return r;
  }();
  return registry;
}

}  // namespace wb
