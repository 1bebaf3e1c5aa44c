// Whether a profile's "parallel" section fits the devices, the model and the batch.
// Every error is a ProfileError with the JSON pointer of the field to change. The
// parser runs what it can know (devices; the model when its config is inline); the
// train stage repeats the model check once the model is loaded.
#pragma once

#include <cstdint>
#include <string>

#include "core/run/profile.h"

namespace wb {

// Self-consistency and devices, plus the model and train-stage batch checks that the
// profile alone decides (model.source "config", stages of type "train").
void checkParallelProfile(const Profile& profile);
// More stages than layers, a balance list that does not sum to n_layer.
void checkParallelFitsModel(const ParallelSpec& spec, int64_t nLayer);
// batch_size must split into micro_batches equal micro-batches.
void checkParallelFitsBatch(const ParallelSpec& spec, int64_t batchSize,
                            const std::string& batchPointer);

}  // namespace wb
