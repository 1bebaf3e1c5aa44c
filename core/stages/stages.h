// The built-in stage types. Each file core/stages/<name>_stage.cpp holds one stage's
// defaults table and implementation; builtin_stages.cpp registers them all.
#pragma once

#include "core/run/stage_registry.h"

namespace wb {

StageType trainStageType();
StageType evalStageType();
StageType generateStageType();
StageType distillStageType();
StageType loraStageType();
StageType pruneStageType();
StageType quantizeStageType();
StageType benchmarkStageType();
StageType compareStageType();

}  // namespace wb
