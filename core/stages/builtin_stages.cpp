// The one place where built-in stage types are registered.
#include "core/stages/stages.h"

namespace wb {

const StageRegistry& builtinStages() {
  static const StageRegistry registry = [] {
    StageRegistry r;
    r.add(trainStageType());
    r.add(evalStageType());
    r.add(generateStageType());
    r.add(distillStageType());
    r.add(loraStageType());
    r.add(pruneStageType());
    r.add(quantizeStageType());
    r.add(benchmarkStageType());
    r.add(compareStageType());
    return r;
  }();
  return registry;
}

}  // namespace wb
