// Rank and world of this process, read once from the launcher's environment:
// torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, or SLURM's
// SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID when torchrun's are absent. Errors name
// the variable. Not here: the rendezvous itself (TCPStore, NCCL unique id exchange).
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace wb {

struct DistEnv {
  int rank = 0, worldSize = 1, localRank = 0;
  std::string masterAddr;  // empty when worldSize == 1
  int masterPort = 0;
  std::string launcher = "none";  // "none" | "torchrun" | "slurm"
  bool distributed() const { return worldSize > 1; }
};

// Looks a variable up; std::nullopt when unset. Tests pass their own.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup processEnvironment();

// Throws InputError("environment: NAME", ...) for a malformed or inconsistent value.
DistEnv readDistEnv(const EnvLookup& lookup = processEnvironment());

}  // namespace wb
