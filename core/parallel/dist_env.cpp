// Launcher environment parsing; see dist_env.h.
#include "core/parallel/dist_env.h"

#include <cstdlib>

#include "core/errors.h"

namespace wb {
namespace {

int parseInt(const std::string& name, const std::string& value, int min, int max) {
  size_t used = 0;
  long v = 0;
  try {
    v = std::stol(value, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || v < min || v > max)
    throw InputError("environment: " + name,
                     "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                         "], got \"" + value + "\"",
                     "unset it, or launch through torchrun / srun, which set it");
  return static_cast<int>(v);
}

}  // namespace

EnvLookup processEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

DistEnv readDistEnv(const EnvLookup& env) {
  DistEnv d;
  // torchrun's names win; SLURM's are the fallback when a job step is launched with srun.
  const bool torchrun = env("WORLD_SIZE").has_value() || env("RANK").has_value();
  const bool slurm = !torchrun && env("SLURM_NTASKS").has_value();
  if (!torchrun && !slurm) return d;
  d.launcher = torchrun ? "torchrun" : "slurm";
  const std::string worldName = torchrun ? "WORLD_SIZE" : "SLURM_NTASKS";
  const std::string rankName = torchrun ? "RANK" : "SLURM_PROCID";
  const std::string localName = torchrun ? "LOCAL_RANK" : "SLURM_LOCALID";
  const auto world = env(worldName), rank = env(rankName), local = env(localName);
  if (!world)
    throw InputError("environment: " + worldName, "is unset while " + rankName + " is set");
  if (!rank)
    throw InputError("environment: " + rankName, "is unset while " + worldName + " is set");
  d.worldSize = parseInt(worldName, *world, 1, 1 << 20);
  d.rank = parseInt(rankName, *rank, 0, 1 << 20);
  if (d.rank >= d.worldSize)
    throw InputError("environment: " + rankName,
                     "rank " + std::to_string(d.rank) + " is not below the world size " +
                         std::to_string(d.worldSize) + " (" + worldName + ")");
  d.localRank = local ? parseInt(localName, *local, 0, 1 << 20) : 0;
  if (d.localRank > d.rank)
    throw InputError("environment: " + localName, "local rank " + std::to_string(d.localRank) +
                                                      " exceeds the global rank " +
                                                      std::to_string(d.rank));
  if (!d.distributed()) return d;
  const auto addr = env("MASTER_ADDR"), port = env("MASTER_PORT");
  if (!addr || addr->empty())
    throw InputError(
        "environment: MASTER_ADDR",
        "is unset for a run of " + std::to_string(d.worldSize) + " processes",
        slurm ? "export MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1) "
                "in the batch script"
              : "torchrun sets it; set it when launching by hand");
  if (!port)
    throw InputError("environment: MASTER_PORT",
                     "is unset for a run of " + std::to_string(d.worldSize) + " processes",
                     "pick a free TCP port, e.g. 29500, the same on every process");
  d.masterAddr = *addr;
  d.masterPort = parseInt("MASTER_PORT", *port, 1, 65535);
  return d;
}

}  // namespace wb
