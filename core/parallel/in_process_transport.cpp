// Thread-and-queue transport and reduction group; see in_process_transport.h.
#include "core/parallel/in_process_transport.h"

namespace wb {
namespace {

std::string shapeText(c10::IntArrayRef s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

class InProcessEndpoint : public Transport {
 public:
  InProcessEndpoint(std::shared_ptr<InProcessHub> hub, int rank)
      : hub_(std::move(hub)), rank_(rank) {}
  int rank() const override { return rank_; }
  int worldSize() const override { return hub_->ranks(); }
  void send(int peer, const MessageTag& tag, const torch::Tensor& tensor) override {
    checkPeer(peer);
    // A copy, so the receiver's graph and buffers are its own, as across devices.
    hub_->post(rank_, peer, tag, tensor.detach().clone());
  }
  torch::Tensor recv(int peer, const MessageTag& tag, const TensorMeta& expect) override {
    checkPeer(peer);
    torch::Tensor t = hub_->take(peer, rank_, tag);
    if (t.sizes().vec() != expect.shape || t.scalar_type() != expect.dtype)
      throw RunError("transport", "rank " + std::to_string(rank_) + " expected " +
                                      shapeText(expect.shape) + " " +
                                      std::string(c10::toString(expect.dtype)) + " from rank " +
                                      std::to_string(peer) + ", got " + shapeText(t.sizes()) + " " +
                                      c10::toString(t.scalar_type()));
    return t.device() == expect.device ? t : t.to(expect.device);
  }
  void allReduceSum(torch::Tensor& t) override { hub_->allReduceSum(rank_, t); }
  void abort(const std::string& reason) override { hub_->abort(reason); }

 private:
  void checkPeer(int peer) const {
    if (peer < 0 || peer >= hub_->ranks() || peer == rank_)
      throw RunError("transport", "rank " + std::to_string(rank_) + " cannot talk to rank " +
                                      std::to_string(peer));
  }
  std::shared_ptr<InProcessHub> hub_;
  int rank_;
};

class InProcessReducer : public GradientReducer {
 public:
  InProcessReducer(std::shared_ptr<InProcessReduceGroup> group, int replica, int replicas)
      : group_(std::move(group)), replica_(replica), replicas_(replicas) {}
  int replicas() const override { return replicas_; }
  void allReduceMean(std::vector<torch::Tensor>& bucket) override {
    group_->reduce(replica_, bucket);
  }
  void abort(const std::string& reason) override { group_->abort(reason); }

 private:
  std::shared_ptr<InProcessReduceGroup> group_;
  int replica_, replicas_;
};

class InProcessBackend : public CommBackend {
 public:
  explicit InProcessBackend(const RankLayout& layout) : layout_(layout) {
    hub_ = InProcessHub::create(layout.worldSize());
    for (int s = 0; s < layout.stages; ++s)
      groups_.push_back(InProcessReduceGroup::create(layout.replicas));
    for (int r = 0; r < layout.worldSize(); ++r) {
      endpoints_.push_back(hub_->endpoint(r));
      reducers_.push_back(groups_[static_cast<size_t>(layout.stageOf(r))]->member(layout.replicaOf(r)));
    }
  }
  std::string name() const override { return "in-process"; }
  Transport& endpoint(int rank) override { return *endpoints_.at(static_cast<size_t>(rank)); }
  GradientReducer& reducer(int rank) override { return *reducers_.at(static_cast<size_t>(rank)); }
  void abort(const std::string& reason) override {
    hub_->abort(reason);
    for (auto& g : groups_) g->abort(reason);
  }
  bool aborted() const override { return hub_->aborted(); }
  size_t pending() const override { return hub_->pending(); }

 private:
  RankLayout layout_;
  std::shared_ptr<InProcessHub> hub_;
  std::vector<std::shared_ptr<InProcessReduceGroup>> groups_;
  std::vector<std::unique_ptr<Transport>> endpoints_;
  std::vector<std::unique_ptr<GradientReducer>> reducers_;
};

}  // namespace

std::unique_ptr<CommBackend> makeInProcessBackend(const RankLayout& layout) {
  return std::make_unique<InProcessBackend>(layout);
}

InProcessHub::InProcessHub(int ranks) : ranks_(ranks), world_(InProcessReduceGroup::create(ranks)) {}

void InProcessHub::allReduceSum(int rank, torch::Tensor& t) {
  std::vector<torch::Tensor> one{t};
  world_->reduce(rank, one, /*mean=*/false);
}

std::shared_ptr<InProcessHub> InProcessHub::create(int ranks) {
  if (ranks < 1) throw RunError("transport", "need at least one rank");
  return std::shared_ptr<InProcessHub>(new InProcessHub(ranks));
}

std::unique_ptr<Transport> InProcessHub::endpoint(int rank) {
  if (rank < 0 || rank >= ranks_) throw RunError("transport", "no rank " + std::to_string(rank));
  return std::make_unique<InProcessEndpoint>(shared_from_this(), rank);
}

void InProcessHub::abort(const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    if (aborted_) return;  // the first reason is the one worth reporting
    aborted_ = true;
    abortReason_ = reason;
    mail_.clear();
  }
  arrived_.notify_all();
  world_->abort(reason);
}

bool InProcessHub::aborted() const {
  std::lock_guard lock(mutex_);
  return aborted_;
}

size_t InProcessHub::pending() const {
  std::lock_guard lock(mutex_);
  return mail_.size();
}

void InProcessHub::post(int from, int to, const MessageTag& tag, torch::Tensor tensor) {
  {
    std::lock_guard lock(mutex_);
    if (aborted_) throw TransportAborted(abortReason_);
    auto [it, fresh] = mail_.emplace(std::make_tuple(from, to, tag), std::move(tensor));
    if (!fresh)
      throw RunError("transport", "rank " + std::to_string(from) + " sent micro-batch " +
                                      std::to_string(tag.microBatch) + " to rank " +
                                      std::to_string(to) + " twice before it was received");
  }
  arrived_.notify_all();
}

torch::Tensor InProcessHub::take(int from, int to, const MessageTag& tag) {
  std::unique_lock lock(mutex_);
  const auto key = std::make_tuple(from, to, tag);
  arrived_.wait(lock, [&] { return aborted_ || mail_.count(key) > 0; });
  if (aborted_) throw TransportAborted(abortReason_);
  auto node = mail_.extract(key);
  return std::move(node.mapped());
}

std::shared_ptr<InProcessReduceGroup> InProcessReduceGroup::create(int replicas) {
  if (replicas < 1) throw RunError("all-reduce", "need at least one replica");
  return std::shared_ptr<InProcessReduceGroup>(new InProcessReduceGroup(replicas));
}

std::unique_ptr<GradientReducer> InProcessReduceGroup::member(int replica) {
  if (replica < 0 || replica >= replicas_)
    throw RunError("all-reduce", "no replica " + std::to_string(replica));
  return std::make_unique<InProcessReducer>(shared_from_this(), replica, replicas_);
}

void InProcessReduceGroup::abort(const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    if (aborted_) return;
    aborted_ = true;
    abortReason_ = reason;
  }
  done_.notify_all();
}

void InProcessReduceGroup::reduce(int replica, std::vector<torch::Tensor>& bucket, bool mean) {
  std::unique_lock lock(mutex_);
  if (aborted_) throw TransportAborted(abortReason_);
  auto& slot = slots_[static_cast<size_t>(replica)];
  if (slot)
    throw RunError("all-reduce",
                   "replica " + std::to_string(replica) + " entered a reduction twice");
  slot = &bucket;
  const int64_t generation = generation_;
  if (++arrived_ < replicas_) {
    // The last replica to arrive writes our result, then moves the generation on.
    done_.wait(lock, [&] { return aborted_ || generation_ != generation; });
    if (generation_ == generation) throw TransportAborted(abortReason_);
    return;
  }
  torch::NoGradGuard noGrad;
  const size_t n = bucket.size();
  for (const auto* s : slots_)
    if (s->size() != n)
      throw RunError("all-reduce", "replicas handed in buckets of different sizes");
  for (size_t i = 0; i < n; ++i) {
    // Sum in replica order on every replica's behalf: identical bits everywhere.
    torch::Tensor sum = (*slots_[0])[i].detach().clone();
    for (size_t r = 1; r < slots_.size(); ++r) sum.add_((*slots_[r])[i].to(sum.device()));
    if (mean) sum.div_(static_cast<double>(replicas_));
    for (auto* s : slots_) (*s)[i].detach().copy_(sum);
  }
  for (auto*& s : slots_) s = nullptr;
  arrived_ = 0;
  ++generation_;
  done_.notify_all();
}

}  // namespace wb
