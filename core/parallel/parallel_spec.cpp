// Checks of the "parallel" profile section; see parallel_spec.h.
#include "core/parallel/parallel_spec.h"

#include "core/model/gpt2_config.h"
#include "core/parallel/partition.h"

namespace wb {

void checkParallelFitsModel(const ParallelSpec& spec, int64_t nLayer) {
  if (spec.balance.empty()) {
    if (spec.pipelineStages > nLayer)
      throw ProfileError({}, "/parallel/pipeline_stages",
                         std::to_string(spec.pipelineStages) + " pipeline stages but the model has only " +
                             std::to_string(nLayer) +
                             " layers (each stage needs at least one; parallel.balance can give half layers)");
    return;
  }
  int64_t halves = 0;
  for (size_t i = 0; i < spec.balance.size(); ++i) halves += balanceHalves(spec.balance[i], i);
  if (halves != 2 * nLayer)
    throw ProfileError({}, "/parallel/balance",
                       "the layers per stage sum to " + halvesText(halves) +
                           " but the model has " + std::to_string(nLayer) + " layers (n_layer)");
}

void checkParallelFitsBatch(const ParallelSpec& spec, int64_t batchSize,
                            const std::string& pointer) {
  if (batchSize % (spec.microBatches * spec.dataParallel) != 0)
    throw ProfileError({}, pointer,
                       "batch_size " + std::to_string(batchSize) + " does not split into " +
                           (spec.dataParallel > 1
                                ? std::to_string(spec.dataParallel) + " replicas (parallel.data_parallel) x "
                                : std::string()) +
                           std::to_string(spec.microBatches) + " equal micro-batches (parallel.micro_batches)");
}

void checkParallelProfile(const Profile& p) {
  const ParallelSpec& s = p.parallel;
  if (!s.balance.empty() && s.balance.size() != static_cast<size_t>(s.pipelineStages))
    throw ProfileError({}, "/parallel/balance",
                       "lists " + std::to_string(s.balance.size()) +
                           " stages but pipeline_stages is " + std::to_string(s.pipelineStages));
  for (size_t i = 0; i < s.balance.size(); ++i) balanceHalves(s.balance[i], i);
  if (p.device.type == "cuda" &&
      static_cast<size_t>(s.pipelineStages * s.dataParallel) > p.device.gpus.size())
    throw ProfileError({}, "/parallel/pipeline_stages",
                       std::to_string(s.pipelineStages) + " stages x " +
                           std::to_string(s.dataParallel) + " replicas need " +
                           std::to_string(s.pipelineStages * s.dataParallel) +
                           " GPUs but device.gpus lists " + std::to_string(p.device.gpus.size()));
  if (p.model.source == "config" && !p.model.config.is_null())
    checkParallelFitsModel(s, Gpt2Config::fromJson(p.model.config, "/model/config", true).nLayer);
  for (size_t i = 0; i < p.stages.size(); ++i)
    if (p.stages[i].type == "train" && p.stages[i].params.contains("batch_size"))
      checkParallelFitsBatch(s, p.stages[i].params["batch_size"].get<int64_t>(),
                             "/stages/" + std::to_string(i) + "/batch_size");
}

}  // namespace wb
