// NCCL communicators, endpoints and gradient reducers; see nccl_transport.h.
#include "core/parallel/nccl_transport.h"

#include <nccl.h>

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "core/torch_compat.h"

namespace wb {
namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t ncclType(torch::Dtype t) {
  switch (t) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kFloat16: return ncclFloat16;
    case torch::kInt64: return ncclInt64;
    case torch::kInt32: return ncclInt32;
    default: break;
  }
  throw RunError("nccl", std::string("no NCCL type for ") + c10::toString(t));
}

// What the communicators of one backend share: the abort flag and its first reason.
// Every NCCL call holds `calls` shared; abort() takes it exclusively before
// ncclCommAbort frees the handles, so no call ever touches a freed communicator (the
// calls are non-blocking: a shared hold lasts microseconds).
struct AbortState {
  std::atomic<bool> aborted{false};
  std::shared_mutex calls;
  std::mutex mutex;
  std::string reason;
  std::string why() {
    std::lock_guard lock(mutex);
    return reason;
  }
};

// One communicator as this rank sees it.
struct Comm {
  std::string key;
  std::vector<int> members;  // world ranks, index = rank in the communicator
  ncclComm_t handle = nullptr;
  // Held around every NCCL call on this communicator. NCCL communicators are not
  // thread-safe, and with the gradient all-reduce started from autograd's thread one
  // communicator is used from two threads: the rank's own calls and the others'
  // aborted() polls. ncclCommGetAsyncError completes a non-blocking call's pending
  // group job, so two threads polling one communicator at once crashed a one-process
  // 2-GPU run (SIGSEGV in a worker thread, 2 x H100, NCCL 2.28.9). Shared by copies.
  std::shared_ptr<std::mutex> use = std::make_shared<std::mutex>();
  int indexOf(int worldRank) const {
    for (size_t i = 0; i < members.size(); ++i)
      if (members[i] == worldRank) return static_cast<int>(i);
    return -1;
  }
};

// A non-blocking communicator's call may return ncclInProgress: poll its state until
// it settles, giving up at once when the backend is aborted (the poll is host-side
// enqueueing; device-side waits are the SpanClock's and end with ncclCommAbort).
// Runs one NCCL call unless the backend is aborted (TransportAborted then).
template <typename Fn>
ncclResult_t guarded(AbortState& abort, Comm& comm, Fn&& fn) {
  std::shared_lock lock(abort.calls);
  if (abort.aborted) throw TransportAborted(abort.why());
  std::lock_guard one(*comm.use);
  return fn();
}

void settle(Comm& comm, ncclResult_t r, AbortState& abort, const std::string& what,
            std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (r == ncclInProgress) {
    if (Clock::now() > deadline)
      throw RunError("nccl", what + " did not finish within " + std::to_string(timeout.count()) + " s",
                     "a rank is missing or stuck; check every rank's log");
    std::this_thread::sleep_for(std::chrono::microseconds(20));
    ncclResult_t state = ncclSuccess;
    if (guarded(abort, comm, [&] { return ncclCommGetAsyncError(comm.handle, &state); }) != ncclSuccess) break;
    r = state;
  }
  if (r != ncclSuccess) {
    if (abort.aborted) throw TransportAborted(abort.why());
    std::string last;
    if (comm.handle) {
      std::shared_lock lock(abort.calls);
      std::lock_guard one(*comm.use);
      if (!abort.aborted) last = ncclGetLastError(comm.handle);
    }
    throw RunError("nccl", what + ": " + ncclGetErrorString(r) + (last.empty() ? "" : " (" + last + ")"));
  }
}

// Every communicator of a layout, in one global order (every rank initialises the ones
// it belongs to in this order).
std::vector<Comm> plannedComms(const RankLayout& l) {
  std::vector<Comm> c;
  Comm world{"world", {}, nullptr};
  for (int r = 0; r < l.worldSize(); ++r) world.members.push_back(r);
  c.push_back(world);
  for (int rep = 0; rep < l.replicas; ++rep)
    for (int s = 0; s + 1 < l.stages; ++s) {
      const std::vector<int> pair{l.rankOf(s, rep), l.rankOf(s + 1, rep)};
      c.push_back({"act." + std::to_string(rep) + "." + std::to_string(s), pair, nullptr});
      c.push_back({"grad." + std::to_string(rep) + "." + std::to_string(s), pair, nullptr});
    }
  if (l.replicas > 1)
    for (int s = 0; s < l.stages; ++s) {
      Comm dp{"dp." + std::to_string(s), {}, nullptr};
      for (int rep = 0; rep < l.replicas; ++rep) dp.members.push_back(l.rankOf(s, rep));
      c.push_back(dp);
    }
  return c;
}

class NcclEndpoint;
class NcclReducer;

class NcclBackend : public CommBackend {
 public:
  // `generation` numbers the backends made from one factory (keys stay unique when a
  // run replaces an aborted backend, and a store never serves a stale id).
  NcclBackend(const RankLayout& layout, std::shared_ptr<Rendezvous> rendezvous, std::chrono::seconds timeout,
              int generation);
  ~NcclBackend() override;
  std::string name() const override { return "nccl " + ncclVersionText(); }
  Transport& endpoint(int rank) override;
  GradientReducer& reducer(int rank) override;
  void abort(const std::string& reason) override;
  bool aborted() const override;

  AbortState& abortState() { return abort_; }
  std::chrono::seconds timeout() const { return timeout_; }
  const RankLayout& layout() const { return layout_; }
  // This rank's handle of communicator `key` (nullptr where it is not a member).
  Comm* comm(int rank, const std::string& key);

 private:
  void initRank(int rank);
  RankLayout layout_;
  std::shared_ptr<Rendezvous> rendezvous_;
  std::chrono::seconds timeout_;
  std::string prefix_;
  mutable AbortState abort_;
  std::map<int, std::vector<Comm>> comms_;  // local rank -> its communicators
  std::map<int, std::unique_ptr<NcclEndpoint>> endpoints_;
  std::map<int, std::unique_ptr<NcclReducer>> reducers_;
  bool handlesAborted_ = false;  // under abort_.calls, exclusive
};

class NcclEndpoint : public Transport {
 public:
  NcclEndpoint(NcclBackend& backend, int rank, torch::Device device)
      : b_(backend),
        rank_(rank),
        device_(device),
        sendStream_(c10::cuda::getStreamFromPool(false, device.index())) {}
  int rank() const override { return rank_; }
  int worldSize() const override { return b_.layout().worldSize(); }

  void send(int peer, const MessageTag& tag, const torch::Tensor& tensor) override {
    auto [comm, peerIndex] = route(peer, tag);
    torch::Tensor t = tensor.contiguous();
    checkDevice(t);
    auto compute = c10::cuda::getCurrentCUDAStream(device_.index());
    // The send stream waits for the producing kernels only; compute goes on at once.
    at::cuda::CUDAEvent ready(cudaEventDisableTiming);
    ready.record(compute);
    ready.block(sendStream_);
    // The caching allocator must not reuse t's memory before the send has read it.
    c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), sendStream_);
    settle(*comm, guarded(b_.abortState(), *comm, [&] {
             return ncclSend(t.data_ptr(), static_cast<size_t>(t.numel()), ncclType(t.scalar_type()), peerIndex,
                             comm->handle, sendStream_.stream());
           }),
           b_.abortState(), "ncclSend to rank " + std::to_string(peer), b_.timeout());
  }

  torch::Tensor recv(int peer, const MessageTag& tag, const TensorMeta& expect) override {
    auto [comm, peerIndex] = route(peer, tag);
    torch::Tensor out = torch::empty(expect.shape, torch::TensorOptions().dtype(expect.dtype).device(device_));
    auto compute = c10::cuda::getCurrentCUDAStream(device_.index());
    settle(*comm, guarded(b_.abortState(), *comm, [&] {
             return ncclRecv(out.data_ptr(), static_cast<size_t>(out.numel()), ncclType(expect.dtype), peerIndex,
                             comm->handle, compute.stream());
           }),
           b_.abortState(), "ncclRecv from rank " + std::to_string(peer), b_.timeout());
    return out;
  }

  torch::Tensor exchange(int peer, const MessageTag& tag, const torch::Tensor& tensor) override {
    auto [comm, peerIndex] = route(peer, tag);
    torch::Tensor t = tensor.contiguous();
    checkDevice(t);
    torch::Tensor out = torch::empty_like(t);
    auto stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    const auto type = ncclType(t.scalar_type());
    const auto n = static_cast<size_t>(t.numel());
    // Grouped, so the two ranks' send+recv pairs cannot wait on each other.
    const ncclResult_t r = guarded(b_.abortState(), *comm, [&] {
      ncclGroupStart();
      ncclResult_t one = ncclSend(t.data_ptr(), n, type, peerIndex, comm->handle, stream);
      if (one == ncclSuccess || one == ncclInProgress) one = ncclRecv(out.data_ptr(), n, type, peerIndex, comm->handle, stream);
      const ncclResult_t end = ncclGroupEnd();
      return one == ncclSuccess || one == ncclInProgress ? end : one;
    });
    settle(*comm, r, b_.abortState(),
           "exchange with rank " + std::to_string(peer), b_.timeout());
    return out;
  }

  void allReduceSum(torch::Tensor& t) override {
    Comm* world = b_.comm(rank_, "world");
    checkDevice(t);
    if (!t.is_contiguous()) throw RunError("nccl", "allReduceSum needs a contiguous tensor");
    auto stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    settle(*world, guarded(b_.abortState(), *world, [&] {
             return ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()),
                                  ncclType(t.scalar_type()), ncclSum, world->handle, stream);
           }),
           b_.abortState(), "world all-reduce", b_.timeout());
  }

  void abort(const std::string& reason) override { b_.abort(reason); }

 private:
  void checkDevice(const torch::Tensor& t) const {
    if (t.device() != device_)
      throw RunError("nccl", "rank " + std::to_string(rank_) + " works on " + device_.str() + " but got a tensor on " +
                                 t.device().str());
  }
  // Which communicator carries a message to or from `peer`, and the peer's index in it.
  std::pair<Comm*, int> route(int peer, const MessageTag& tag) {
    const RankLayout& l = b_.layout();
    const int stage = l.stageOf(rank_), replica = l.replicaOf(rank_);
    std::string key;
    if (tag.direction == Direction::TiedGradient) {
      key = "world";
    } else if (l.replicaOf(peer) == replica && l.stageOf(peer) == stage + 1) {
      key = (tag.direction == Direction::Activation ? "act." : "grad.") + std::to_string(replica) + "." +
            std::to_string(stage);
    } else if (l.replicaOf(peer) == replica && l.stageOf(peer) == stage - 1) {
      key = (tag.direction == Direction::Activation ? "act." : "grad.") + std::to_string(replica) + "." +
            std::to_string(stage - 1);
    } else {
      throw RunError("nccl", "rank " + std::to_string(rank_) + " has no channel to rank " + std::to_string(peer));
    }
    Comm* c = b_.comm(rank_, key);
    if (!c) throw RunError("nccl", "rank " + std::to_string(rank_) + " is not in communicator " + key);
    return {c, c->indexOf(peer)};
  }
  NcclBackend& b_;
  int rank_;
  torch::Device device_;
  c10::cuda::CUDAStream sendStream_;
};

class NcclReducer : public GradientReducer {
 public:
  NcclReducer(NcclBackend& backend, int rank, torch::Device device)
      : b_(backend),
        rank_(rank),
        device_(device),
        stream_(c10::cuda::getStreamFromPool(false, device.index())) {}
  int replicas() const override { return b_.layout().replicas; }

  void allReduceMean(std::vector<torch::Tensor>& bucket) override {
    if (bucket.empty() || replicas() == 1) return;
    Comm* dp = b_.comm(rank_, "dp." + std::to_string(b_.layout().stageOf(rank_)));
    if (!dp) throw RunError("nccl", "rank " + std::to_string(rank_) + " has no data-parallel communicator");
    torch::NoGradGuard noGrad;
    // The stream that produced the gradients: the worker's compute stream, or inside
    // backward the one the autograd engine runs the accumulation on (the same stream).
    c10::cuda::CUDAGuard onDevice(device_);
    auto producer = c10::cuda::getCurrentCUDAStream(device_.index());
    at::cuda::CUDAEvent ready(cudaEventDisableTiming);
    ready.record(producer);
    ready.block(stream_);
    {
      // Flatten, reduce and scatter back on the side stream; allocations made here
      // belong to it, so the allocator keeps them until its work is done. The gradients
      // themselves live on (they are the parameters' .grad) until finish() has ordered
      // the compute stream after this work.
      c10::cuda::CUDAStreamGuard onSide(stream_);
      std::vector<torch::Tensor> flat;
      flat.reserve(bucket.size());
      for (const auto& g : bucket) flat.push_back(g.reshape({-1}));
      torch::Tensor buffer = torch::cat(flat);
      settle(*dp, guarded(b_.abortState(), *dp, [&] {
               return ncclAllReduce(buffer.data_ptr(), buffer.data_ptr(), static_cast<size_t>(buffer.numel()),
                                    ncclType(buffer.scalar_type()), ncclAvg, dp->handle, stream_.stream());
             }),
             b_.abortState(), "gradient all-reduce", b_.timeout());
      int64_t offset = 0;
      for (auto& g : bucket) {
        g.copy_(buffer.narrow(0, offset, g.numel()).view(g.sizes()));
        offset += g.numel();
      }
    }
    started_ = true;
  }

  void finish() override {
    if (!started_) return;
    started_ = false;
    // Whatever the compute stream does next (clip, AdamW) sees the means; the side
    // stream runs its buckets in order, so waiting for its current end suffices.
    at::cuda::CUDAEvent done(cudaEventDisableTiming);
    done.record(stream_);
    done.block(c10::cuda::getCurrentCUDAStream(device_.index()));
  }

  void abort(const std::string& reason) override { b_.abort(reason); }

 private:
  NcclBackend& b_;
  int rank_;
  torch::Device device_;
  c10::cuda::CUDAStream stream_;
  std::atomic<bool> started_{false};  // set by whichever thread started a bucket
};

NcclBackend::NcclBackend(const RankLayout& layout, std::shared_ptr<Rendezvous> rendezvous, std::chrono::seconds timeout,
                         int generation)
    : layout_(layout),
      rendezvous_(std::move(rendezvous)),
      timeout_(timeout),
      prefix_("nccl/" + std::to_string(generation) + "/") {
  // NVLink multicast (NVLS) stays off unless the user turned it on explicitly: on
  // shared hosts a fault in it can take the GPUs out of service.
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
  for (int r : layout_.localRanks) {
    const torch::Device d = layout_.devices.at(static_cast<size_t>(r));
    if (!d.is_cuda())
      throw InputError("/device/type", "NCCL needs CUDA devices; rank " + std::to_string(r) + " is on " + d.str());
    comms_[r] = {};
  }
  // One thread per local rank, as in a multi-process run: a non-blocking init returns
  // at once and completes when every member has called it.
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::exception_ptr error;
  for (int r : layout_.localRanks)
    threads.emplace_back([&, r] {
      try {
        initRank(r);
      } catch (...) {
        std::lock_guard lock(mutex);
        if (!error) error = std::current_exception();
        abort("communicator setup failed on rank " + std::to_string(r));
      }
    });
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  for (int r : layout_.localRanks) {
    const torch::Device d = layout_.devices.at(static_cast<size_t>(r));
    c10::cuda::CUDAGuard guard(d);
    endpoints_[r] = std::make_unique<NcclEndpoint>(*this, r, d);
    reducers_[r] = std::make_unique<NcclReducer>(*this, r, d);
  }
}

void NcclBackend::initRank(int rank) {
  const torch::Device d = layout_.devices.at(static_cast<size_t>(rank));
  c10::cuda::CUDAGuard guard(d);
  for (Comm c : plannedComms(layout_)) {
    const int index = c.indexOf(rank);
    if (index < 0) continue;
    ncclUniqueId id;
    if (index == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) throw RunError("nccl", std::string("ncclGetUniqueId: ") + ncclGetErrorString(r));
      rendezvous_->publish(prefix_ + c.key, std::string(id.internal, sizeof id.internal));
    } else {
      const std::string bytes = rendezvous_->fetch(prefix_ + c.key);
      if (bytes.size() != sizeof id.internal) throw RunError("nccl", "malformed unique id for " + c.key);
      std::memcpy(id.internal, bytes.data(), sizeof id.internal);
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t handle = nullptr;
    ncclResult_t r = ncclSuccess;
    {
      // Under the exclusive lock, so abort() sees either no handle or a complete one.
      std::unique_lock lock(abort_.calls);
      if (abort_.aborted) throw TransportAborted(abort_.why());
      r = ncclCommInitRankConfig(&handle, static_cast<int>(c.members.size()), id, index, &config);
      c.handle = handle;
      comms_[rank].push_back(c);  // kept even if init fails, so abort() reaches it
    }
    settle(c, r, abort_, "creating communicator " + c.key + " (rank " + std::to_string(rank) + ")", timeout_);
  }
}

NcclBackend::~NcclBackend() {
  if (abort_.aborted) {
    abort("shutting down");
    return;
  }
  // Normal end: every operation this process issued has completed (the engine waits
  // for its streams), so finalize and destroy; anything that does not settle in time
  // is aborted instead.
  try {
    // Finalize every handle first (non-blocking, returns at once), then wait for all:
    // a finalize may need its peers to have finalized too.
    std::vector<std::pair<Comm*, ncclResult_t>> pending;
    for (auto& [rank, list] : comms_) {
      c10::cuda::CUDAGuard guard(layout_.devices.at(static_cast<size_t>(rank)));
      for (auto& c : list) pending.emplace_back(&c, ncclCommFinalize(c.handle));
    }
    for (auto& [c, r] : pending) settle(*c, r, abort_, "finalize " + c->key, std::chrono::seconds(30));
    for (auto& [rank, list] : comms_)
      for (auto& c : list) ncclCommDestroy(c.handle);
    // No process leaves before every rank has destroyed its communicators: a peer's
    // teardown may still touch buffers this process shares with it.
    for (const auto& [rank, list] : comms_) rendezvous_->publish(prefix_ + "closed." + std::to_string(rank), "1");
    for (int r = 0; r < layout_.worldSize(); ++r)
      rendezvous_->fetch(prefix_ + "closed." + std::to_string(r), std::chrono::seconds(60));
  } catch (...) {
    abort("finalize failed");
  }
}

Transport& NcclBackend::endpoint(int rank) {
  auto it = endpoints_.find(rank);
  if (it == endpoints_.end()) throw RunError("nccl", "rank " + std::to_string(rank) + " is not run by this process");
  return *it->second;
}

GradientReducer& NcclBackend::reducer(int rank) {
  auto it = reducers_.find(rank);
  if (it == reducers_.end()) throw RunError("nccl", "rank " + std::to_string(rank) + " is not run by this process");
  return *it->second;
}

Comm* NcclBackend::comm(int rank, const std::string& key) {
  auto it = comms_.find(rank);
  if (it == comms_.end()) return nullptr;
  for (auto& c : it->second)
    if (c.key == key) return &c;
  return nullptr;
}

void NcclBackend::abort(const std::string& reason) {
  {
    std::lock_guard lock(abort_.mutex);
    if (abort_.reason.empty()) abort_.reason = reason;
  }
  abort_.aborted = true;  // new calls bail out from here on
  std::unique_lock calls(abort_.calls);
  if (handlesAborted_) return;
  handlesAborted_ = true;
  // Abort, never destroy: destroy would wait for peers that may never come.
  for (auto& [rank, list] : comms_)
    for (auto& c : list)
      if (c.handle) ncclCommAbort(c.handle);
}

bool NcclBackend::aborted() const {
  if (abort_.aborted) return true;
  // A peer's failure surfaces as an asynchronous error on our communicators.
  std::string failure;
  {
    std::shared_lock lock(abort_.calls);
    if (abort_.aborted) return true;
    for (const auto& [rank, list] : comms_)
      for (const auto& c : list) {
        ncclResult_t r = ncclSuccess;
        if (!failure.empty() || !c.handle) continue;
        std::lock_guard one(*c.use);
        if (ncclCommGetAsyncError(c.handle, &r) == ncclSuccess && r != ncclSuccess && r != ncclInProgress)
          failure = "communicator " + c.key + ": " + ncclGetErrorString(r);
      }
  }
  if (failure.empty()) return false;
  const_cast<NcclBackend*>(this)->abort(failure);
  return true;
}

}  // namespace

std::string ncclVersionText() {
  int v = 0;
  ncclGetVersion(&v);
  // NCCL >= 2.9 encodes major * 10000 + minor * 100 + patch.
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

CommFactory ncclCommFactory(std::shared_ptr<Rendezvous> rendezvous, std::chrono::seconds timeout) {
  auto generation = std::make_shared<int>(0);
  return [rendezvous, timeout, generation](const RankLayout& layout) -> std::unique_ptr<CommBackend> {
    return std::make_unique<NcclBackend>(layout, rendezvous, timeout, (*generation)++);
  };
}

}  // namespace wb
