// Training checkpoints: one folder per step, `checkpoints/step-00000100/`, holding
// model.safetensors + config.json (a Hugging Face folder transformers can load),
// optimizer.safetensors (AdamW moments and the RNG states) and trainer.json (step,
// data cursor). Written under a temporary name, completed by a DONE marker, then
// renamed, so a killed process never leaves a folder that looks complete.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/model/gpt2.h"
#include "core/train/adamw.h"

namespace wb {

struct CheckpointState {
  int64_t step = 0;        // optimizer steps completed
  int64_t dataCursor = 0;  // batches drawn by the sampler
};

// Saves and keeps only the newest `keepLast` complete checkpoints (0: keep all).
std::filesystem::path saveTrainingCheckpoint(const std::filesystem::path& root, Gpt2& model,
                                             const AdamW& optimizer, const CheckpointState& state,
                                             int keepLast);
// The same from any holder of the optimizer state: tensors named as
// AdamW::stateTensors() names them and the optimizer's step count. Pipeline training
// merges its stages' optimizers into this form, so its checkpoints resume on one
// device and the other way round.
std::filesystem::path saveTrainingCheckpoint(const std::filesystem::path& root, Gpt2& model,
                                             std::vector<std::pair<std::string, torch::Tensor>> optimizerState,
                                             int64_t optimizerSteps, const CheckpointState& state, int keepLast);
// Restores weights, optimizer state and RNG states; InputError naming the folder when
// it is incomplete (no DONE) or does not match the model.
CheckpointState loadTrainingCheckpoint(const std::filesystem::path& dir, Gpt2& model,
                                       AdamW& optimizer);
struct LoadedCheckpoint {
  CheckpointState state;
  std::map<std::string, torch::Tensor> optimizerState;  // "exp_avg.<param>", ... (CPU)
  int64_t optimizerSteps = 0;
};
// Restores weights and RNG states, hands back the optimizer's state for its holder.
LoadedCheckpoint readTrainingCheckpoint(const std::filesystem::path& dir, Gpt2& model);
// The newest complete checkpoint under root, if any.
std::optional<std::filesystem::path> latestCheckpoint(const std::filesystem::path& root);

}  // namespace wb
