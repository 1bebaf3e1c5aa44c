// Where the ranks of a multi-GPU run find each other's NCCL unique ids: a key-value
// rendezvous. In one process (the app: one worker thread per GPU) the ids are shared
// in memory; across processes (torchrun, SLURM) through LibTorch's c10d TCPStore at
// MASTER_ADDR:MASTER_PORT, hosted by rank 0 or by torchrun's agent. Not here: the
// communicators themselves (nccl_transport.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/parallel/dist_env.h"

namespace wb {

class Rendezvous {
 public:
  virtual ~Rendezvous() = default;
  virtual void publish(const std::string& key, const std::string& bytes) = 0;
  // Blocks until `key` is published; RunError after the rendezvous' timeout.
  virtual std::string fetch(const std::string& key) = 0;
  // The same with its own, usually shorter, limit (a teardown barrier).
  virtual std::string fetch(const std::string& key, std::chrono::milliseconds timeout) = 0;
};

std::shared_ptr<Rendezvous> makeInMemoryRendezvous(std::chrono::seconds timeout);

// Whether this LibTorch ships c10d's TCPStore (1.13 and 2.x on Linux do).
bool haveStoreRendezvous();
// Rank 0 hosts the store unless torchrun's agent already does
// (TORCHELASTIC_USE_AGENT_STORE=True), in which case every rank connects as a client.
// Keys are prefixed with the run's restart count so a restarted job never reads a
// stale id. InputError where the LibTorch has no TCPStore.
std::shared_ptr<Rendezvous> makeStoreRendezvous(const DistEnv& env, std::chrono::seconds timeout,
                                                const EnvLookup& lookup = processEnvironment());

}  // namespace wb
