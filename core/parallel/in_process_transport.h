// Transport and gradient all-reduce between threads of one process: thread-safe
// mailboxes keyed by (sender, receiver, tag) and a reduction group. This is what the
// pipeline uses on the CPU (and between GPUs of one process, copying to the
// receiver's device). abort() wakes every waiter with TransportAborted. Not here:
// anything across processes (that is the NCCL transport's job).
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "core/parallel/transport.h"

namespace wb {

class InProcessReduceGroup;

class InProcessHub : public std::enable_shared_from_this<InProcessHub> {
 public:
  static std::shared_ptr<InProcessHub> create(int ranks);
  // The endpoint of `rank`; endpoints share this hub and may be used from any thread.
  std::unique_ptr<Transport> endpoint(int rank);
  int ranks() const { return ranks_; }
  void abort(const std::string& reason);
  bool aborted() const;
  // Messages sent but not received (a finished pass leaves none).
  size_t pending() const;

  void post(int from, int to, const MessageTag& tag, torch::Tensor tensor);
  torch::Tensor take(int from, int to, const MessageTag& tag);
  // Sum over every rank (each calls it once per collective).
  void allReduceSum(int rank, torch::Tensor& t);

 private:
  explicit InProcessHub(int ranks);
  int ranks_;
  std::shared_ptr<InProcessReduceGroup> world_;
  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  std::map<std::tuple<int, int, MessageTag>, torch::Tensor> mail_;
  std::string abortReason_;
  bool aborted_ = false;
};

// Data-parallel replicas as threads: every replica calls allReduceMean with the same
// bucket sequence; the last to arrive sums in replica order, so every replica gets
// bit-identical means.
class InProcessReduceGroup : public std::enable_shared_from_this<InProcessReduceGroup> {
 public:
  static std::shared_ptr<InProcessReduceGroup> create(int replicas);
  std::unique_ptr<GradientReducer> member(int replica);
  void abort(const std::string& reason);

  // Mean (or, with mean = false, sum) over the replicas, in replica order.
  void reduce(int replica, std::vector<torch::Tensor>& bucket, bool mean = true);

 private:
  explicit InProcessReduceGroup(int replicas)
      : replicas_(replicas), slots_(static_cast<size_t>(replicas)) {}
  int replicas_;
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<std::vector<torch::Tensor>*> slots_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  std::string abortReason_;
  bool aborted_ = false;
};

// Every rank of a layout as threads of this process: one hub for the pipeline and the
// world sums, one reduce group per stage for its replicas.
std::unique_ptr<CommBackend> makeInProcessBackend(const RankLayout& layout);

}  // namespace wb
