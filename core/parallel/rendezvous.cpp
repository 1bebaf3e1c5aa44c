// In-memory and TCPStore rendezvous; see rendezvous.h.
#include "core/parallel/rendezvous.h"

#include <condition_variable>
#include <map>
#include <mutex>

#include "core/errors.h"
#include "core/torch_compat.h"

#if __has_include(<torch/csrc/distributed/c10d/TCPStore.hpp>)
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#define WB_HAVE_TCPSTORE 1
#endif

namespace wb {
namespace {

class InMemoryRendezvous : public Rendezvous {
 public:
  explicit InMemoryRendezvous(std::chrono::seconds timeout) : timeout_(timeout) {}
  void publish(const std::string& key, const std::string& bytes) override {
    {
      std::lock_guard lock(mutex_);
      values_[key] = bytes;
    }
    published_.notify_all();
  }
  std::string fetch(const std::string& key) override {
    return fetch(key, std::chrono::duration_cast<std::chrono::milliseconds>(timeout_));
  }
  std::string fetch(const std::string& key, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mutex_);
    if (!published_.wait_for(lock, timeout, [&] { return values_.count(key) > 0; }))
      throw RunError("rendezvous", "no rank published \"" + key + "\" within " +
                                       std::to_string(timeout.count()) + " ms");
    return values_.at(key);
  }

 private:
  std::chrono::seconds timeout_;
  std::mutex mutex_;
  std::condition_variable published_;
  std::map<std::string, std::string> values_;
};

#ifdef WB_HAVE_TCPSTORE
class StoreRendezvous : public Rendezvous {
 public:
  StoreRendezvous(const DistEnv& env, std::chrono::seconds timeout, bool agentStore, std::string prefix)
      : prefix_(std::move(prefix)), timeout_(std::chrono::duration_cast<std::chrono::milliseconds>(timeout)) {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(env.masterPort);
    o.isServer = env.rank == 0 && !agentStore;
    o.numWorkers = static_cast<std::size_t>(env.worldSize);
    o.waitWorkers = false;  // ranks meet at their first fetch, not in the constructor
    o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(env.masterAddr, o);
    } catch (const std::exception& e) {
      throw RunError("rendezvous",
                     std::string(o.isServer ? "could not host" : "could not reach") + " the TCPStore at " +
                         env.masterAddr + ":" + std::to_string(env.masterPort) + ": " + e.what(),
                     "check MASTER_ADDR / MASTER_PORT and that the port is free on rank 0");
    }
  }
  void publish(const std::string& key, const std::string& bytes) override {
    store_->set(prefix_ + key, std::vector<uint8_t>(bytes.begin(), bytes.end()));
  }
  std::string fetch(const std::string& key) override { return fetch(key, timeout_); }
  std::string fetch(const std::string& key, std::chrono::milliseconds timeout) override {
    try {
      store_->wait({prefix_ + key}, timeout);
      const auto v = store_->get(prefix_ + key);
      return std::string(v.begin(), v.end());
    } catch (const std::exception& e) {
      throw RunError("rendezvous", "waiting for \"" + key + "\": " + e.what(),
                     "a rank did not start or failed before publishing its NCCL id");
    }
  }

 private:
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::TCPStore> store_;
};
#endif

}  // namespace

std::shared_ptr<Rendezvous> makeInMemoryRendezvous(std::chrono::seconds timeout) {
  return std::make_shared<InMemoryRendezvous>(timeout);
}

bool haveStoreRendezvous() {
#ifdef WB_HAVE_TCPSTORE
  return true;
#else
  return false;
#endif
}

std::shared_ptr<Rendezvous> makeStoreRendezvous(const DistEnv& env, std::chrono::seconds timeout,
                                                const EnvLookup& lookup) {
  if (!env.distributed())
    throw RunError("rendezvous", "a store rendezvous needs WORLD_SIZE > 1");
#ifdef WB_HAVE_TCPSTORE
  const bool agentStore = lookup("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  const std::string prefix = "wb/" + lookup("TORCHELASTIC_RESTART_COUNT").value_or("0") + "/";
  return std::make_shared<StoreRendezvous>(env, timeout, agentStore, prefix);
#else
  (void)timeout, (void)lookup;
  throw InputError("environment: MASTER_ADDR",
                   "this LibTorch (" + compat::torchVersion() + ") has no c10d TCPStore for the rendezvous",
                   "build against a LibTorch with distributed support (torch 2.x wheels have it)");
#endif
}

}  // namespace wb
