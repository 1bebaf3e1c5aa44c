// A synthetic stage for the UI tests and the screenshot tool: it emits the metric
// families a GPT-2 run emits (loss, time per batch, throughput, memory, eval
// perplexity, benchmark latency with repeats) from a seeded generator, paced by a
// sleep, checking the cancel token every step. Torch-free; not a model.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/run/stage_registry.h"

namespace wb::test {

// A registry holding the "synth" stage type.
const StageRegistry& uiTestStages();

// A profile with one synth stage; `stage` keys override the stage's defaults.
nlohmann::json synthProfile(const std::string& name, const nlohmann::json& stage = nlohmann::json::object(),
                            uint64_t seed = 1337);

}  // namespace wb::test
