// How pipeline stages and data-parallel replicas talk: point-to-point tensors between
// stage ranks (Transport) and gradient all-reduce among replicas (GradientReducer).
// One endpoint per rank, so an NCCL implementation maps each call to ncclSend/ncclRecv
// (ncclAllReduce) on that rank's device stream; the in-process one (threads and
// queues) is in in_process_transport.h. Both must make abort() wake every waiter.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/torch_compat.h"

namespace wb {

// What a message carries: micro-batch activations forward, their gradients backward,
// or the tied embedding's gradient between the first and last stage.
enum class Direction { Activation, Gradient, TiedGradient };

struct MessageTag {
  int64_t microBatch = 0;
  Direction direction = Direction::Activation;
  bool operator<(const MessageTag& o) const {
    return microBatch != o.microBatch ? microBatch < o.microBatch : direction < o.direction;
  }
};

// What the receiver expects. NCCL needs the buffer before the bytes arrive, so every
// receive states shape, dtype and device; the in-process transport checks them.
struct TensorMeta {
  std::vector<int64_t> shape;
  torch::Dtype dtype = torch::kFloat32;
  torch::Device device{torch::kCPU};
};

// Raised in every waiter once a transport is aborted; the pipeline reports the error
// that caused the abort (or Cancelled), not this one.
class TransportAborted : public RunError {
 public:
  explicit TransportAborted(const std::string& reason)
      : RunError("transport", "aborted: " + reason) {}
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int worldSize() const = 0;
  // Hands `tensor` to `peer`; returns once the tensor may be reused (NCCL: enqueued on
  // this rank's stream, ordered after the compute that produced it).
  virtual void send(int peer, const MessageTag& tag, const torch::Tensor& tensor) = 0;
  // Blocks until the message from `peer` with `tag` arrives (NCCL: until the receive is
  // enqueued on the stream). Throws TransportAborted after abort().
  virtual torch::Tensor recv(int peer, const MessageTag& tag, const TensorMeta& expect) = 0;
  // Sends ours and receives the peer's in one step; NCCL groups the two calls
  // (ncclGroupStart/End) so two ranks exchanging at once cannot deadlock.
  virtual torch::Tensor exchange(int peer, const MessageTag& tag, const torch::Tensor& tensor) {
    send(peer, tag, tensor);
    return recv(peer, tag, {tensor.sizes().vec(), tensor.scalar_type(), tensor.device()});
  }
  // Replaces `t` by its sum over every rank of the world (the loss, the clip norm's
  // sum of squares). Every rank calls it, in the same order, with the same shape.
  virtual void allReduceSum(torch::Tensor& t) = 0;
  // Fails every pending and future call on every rank it can reach (NCCL:
  // ncclCommAbort, never ncclCommDestroy, so a stuck peer cannot hang us).
  virtual void abort(const std::string& reason) = 0;
};

// Gradient all-reduce among data-parallel replicas of one stage. The engine calls it
// with buckets of gradients in backward order (bucketize()), each as soon as the last
// micro-batch's backward has accumulated every gradient of the bucket (from autograd
// hooks, while the backward of earlier layers still runs), and finish() once backward
// is over. NCCL reduces on a side stream, so the reduction overlaps the backward; the
// in-process one reduces when every replica has handed in its bucket.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  virtual int replicas() const = 0;
  // Starts replacing each tensor by the mean over replicas (same shapes on every
  // replica, buckets in the same order). The result is visible to the compute stream
  // after finish(); until then the caller must not touch the tensors. May be called
  // from the autograd engine's thread (inside backward).
  virtual void allReduceMean(std::vector<torch::Tensor>& bucket) = 0;
  // Orders this rank's compute stream after every reduction started so far (NCCL: an
  // event wait, no host sync; in-process: nothing, reductions are synchronous).
  virtual void finish() {}
  virtual void abort(const std::string& reason) = 0;
};

// Where the ranks of a pipeline x data-parallel run are: world rank = replica *
// stages + stage, so the stages of one replica are neighbours. A process drives
// `localRanks` (all of them in the app: one worker thread per rank; one under torchrun).
struct RankLayout {
  int stages = 1, replicas = 1;
  std::vector<int> localRanks;
  std::vector<torch::Device> devices;  // per world rank; only the local ones are used
  int worldSize() const { return stages * replicas; }
  int stageOf(int rank) const { return rank % stages; }
  int replicaOf(int rank) const { return rank / stages; }
  int rankOf(int stage, int replica) const { return replica * stages + stage; }
};

// The communication of one run: a Transport per local rank (pipeline neighbours, the
// tied-embedding exchange, world sums) and a GradientReducer per local rank (among the
// replicas of its stage). Created once per engine; dead after abort().
class CommBackend {
 public:
  virtual ~CommBackend() = default;
  virtual std::string name() const = 0;  // "in-process", "nccl"
  virtual Transport& endpoint(int rank) = 0;
  virtual GradientReducer& reducer(int rank) = 0;
  virtual void abort(const std::string& reason) = 0;
  virtual bool aborted() const = 0;
  // Messages sent but never received, where the backend can tell (else 0).
  virtual size_t pending() const { return 0; }
};
using CommFactory = std::function<std::unique_ptr<CommBackend>(const RankLayout&)>;

// Groups parameter indices into buckets of about `bucketBytes`, last parameter first
// (the order backward produces gradients in).
std::vector<std::vector<size_t>> bucketize(const std::vector<torch::Tensor>& params,
                                           int64_t bucketBytes);

}  // namespace wb
