// Pipeline x data-parallel execution on worker threads; see pipeline_engine.h.
#include "core/parallel/pipeline_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>  // std::uncaught_exceptions
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "core/bench/memory_probe.h"
#include "core/errors.h"
#include "core/nvtx.h"
#include "core/parallel/in_process_transport.h"
#include "core/parallel/span_clock.h"
#include "core/run/profile.h"

namespace wb {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A span whose ends are SpanClock points, turned into seconds after the pass.
struct PendingSpan {
  SpanKind kind;
  size_t begin, end;
};

// Calls `fn` after autograd has accumulated a parameter's gradient (a post hook on the
// parameter's AccumulateGrad node; works alike on LibTorch 1.13 and 2.x).
class AccumulatedHook : public torch::autograd::FunctionPostHook {
 public:
  explicit AccumulatedHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

// What the one rank holding `owned` has, on every rank: a world sum to which the others
// add zeros shaped like `like` (gatherModel, gatherOptimizerState).
torch::Tensor fromOwner(Transport& ep, const torch::Tensor& owned, const torch::Tensor& like, const torch::Device& device) {
  torch::Tensor t = owned.defined() ? owned.detach().to(device).clone()
                                    : torch::zeros(like.sizes(), like.options().device(device));
  ep.allReduceSum(t);
  return t;
}

}  // namespace

// One rank's data-parallel gradient buckets, reduced while the last micro-batch's
// backward still runs: armed before that backward, every parameter whose gradient
// has been accumulated counts down its bucket, and buckets start in bucket order
// (the same order on every replica, which NCCL needs) as soon as all of theirs are
// in. finish() starts whatever is left (parameters without a gradient get zeros) and
// orders the compute stream after the reductions. The buckets are those of
// bucketize() over the stage's parameters, so the values equal the unoverlapped
// reduction's bit for bit.
class GradBuckets {
 public:
  explicit GradBuckets(const std::vector<std::pair<std::string, torch::Tensor>>& params, int64_t bucketBytes) {
    for (const auto& [name, p] : params) params_.push_back(p);
    buckets_ = bucketize(params_, bucketBytes);
    bucketOf_.assign(params_.size(), 0);
    for (size_t k = 0; k < buckets_.size(); ++k)
      for (size_t i : buckets_[k]) bucketOf_[i] = k;
    pending_.assign(buckets_.size(), 0);
    hooks_.resize(params_.size());
    attach();
  }
  ~GradBuckets() {
    for (auto& [acc, key] : hooks_)
      if (acc) acc->del_post_hook(key);
  }
  GradBuckets(const GradBuckets&) = delete;
  GradBuckets& operator=(const GradBuckets&) = delete;

  void arm(GradientReducer& reducer) {
    std::lock_guard lock(mutex_);
    attach();
    reducer_ = &reducer;
    for (size_t k = 0; k < buckets_.size(); ++k) pending_[k] = buckets_[k].size();
    next_ = 0;
    armed_ = true;
  }
  void disarm() {
    std::lock_guard lock(mutex_);
    armed_ = false;
  }
  // Starts the buckets not started yet, then orders the compute stream after all.
  void finish() {
    std::lock_guard lock(mutex_);
    if (!armed_) return;
    armed_ = false;  // also when a reduction below throws (abort)
    while (next_ < buckets_.size()) start(next_++);
    reducer_->finish();
  }

 private:
  // Puts the hook on each parameter's current AccumulateGrad node. The node is kept
  // alive here (the parameter holds it weakly), so it stays the one every later graph
  // accumulates through; moving a parameter to another device (set_data, e.g. to
  // evaluate a spread model on one GPU) makes LibTorch start a new one, which then
  // gets the hook on the next arm().
  void attach() {
    for (size_t i = 0; i < params_.size(); ++i) {
      auto acc = torch::autograd::impl::grad_accumulator(params_[i]);
      auto& [held, key] = hooks_[i];
      if (acc == held) continue;
      if (held) held->del_post_hook(key);
      held = acc;
      if (acc) key = acc->add_post_hook(std::make_unique<AccumulatedHook>([this, i] { accumulated(i); }));
    }
  }
  void accumulated(size_t i) {
    std::lock_guard lock(mutex_);
    if (!armed_) return;
    size_t& left = pending_[bucketOf_[i]];
    if (left > 0) --left;
    while (next_ < buckets_.size() && pending_[next_] == 0) start(next_++);
  }
  void start(size_t k) {
    std::vector<torch::Tensor> grads;
    grads.reserve(buckets_[k].size());
    for (size_t i : buckets_[k]) {
      torch::Tensor& p = params_[i];
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.grad());
    }
    reducer_->allReduceMean(grads);
  }
  std::vector<torch::Tensor> params_;
  std::vector<std::vector<size_t>> buckets_;
  std::vector<size_t> bucketOf_, pending_;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
  std::mutex mutex_;  // hooks run on the autograd engine's thread for the device
  GradientReducer* reducer_ = nullptr;
  size_t next_ = 0;
  bool armed_ = false;
};

struct PipelineEngine::Rank {
  int rank = 0, stage = 0, replica = 0;
  size_t slot = 0;  // index in ranks_
  torch::Device device{torch::kCPU};
  std::unique_ptr<PipelineStage> st;
  std::unique_ptr<AdamW> opt;
  std::vector<Instruction> program;
  size_t lastBackward = 0;              // index in program of the last Backward
  std::unique_ptr<GradBuckets> grads;  // data parallel only
};

PartitionCosts partitionCosts(Gpt2Impl& model) {
  PartitionCosts c;
  auto count = [](torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  };
  auto& tr = *model.transformer;
  for (size_t l = 0; l < tr.h->size(); ++l) {
    auto& block = *tr.h->ptr<Gpt2BlockImpl>(l);
    c.halves.push_back(count(*block.ln_1) + count(*block.attn));
    c.halves.push_back(count(*block.ln_2) + count(*block.mlp));
  }
  c.embeddings = count(*tr.wte) + count(*tr.wpe);
  // The head costs its weight whether tied (a copy on the last stage) or not.
  c.head = count(*tr.ln_f) + model.config().vocabSize * model.config().nEmbd;
  return c;
}

PartitionCosts computeCosts(const Gpt2Config& c, int64_t seqLen) {
  // Multiply-adds per token: 4 d^2 in the attention half's matmuls plus about T d in
  // causal attention (QK^T and AV over half the context each), 8 d^2 in the MLP half,
  // vocab x d in the head.
  PartitionCosts k;
  for (int64_t l = 0; l < c.nLayer; ++l) {
    k.halves.push_back(4 * c.nEmbd * c.nEmbd + seqLen * c.nEmbd);
    k.halves.push_back(8 * c.nEmbd * c.nEmbd);
  }
  k.embeddings = 0;
  k.head = c.vocabSize * c.nEmbd;
  return k;
}

Gpt2 cloneModel(Gpt2& model) {
  // Building a Gpt2 draws its random init from the CPU generator; put the generator
  // back so a replica does not shift the run's later random numbers.
  auto gen = at::detail::getDefaultCPUGenerator();
  torch::Tensor rng;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    rng = gen.get_state();
  }
  Gpt2 copy(model->config());
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  }
  copy->setAttentionBackend(model->attentionBackend());
  torch::NoGradGuard noGrad;
  auto src = model->named_parameters();
  for (auto& item : copy->named_parameters()) {
    const torch::Tensor& from = src[item.key()];
    item.value().set_data(from.detach().clone());
    item.value().set_requires_grad(from.requires_grad());
  }
  auto srcBuf = model->named_buffers();
  for (auto& item : copy->named_buffers()) item.value().set_data(srcBuf[item.key()].detach().clone());
  copy->train(model->is_training());
  return copy;
}

PipelineEngine::PipelineEngine(Gpt2 model, PipelineOptions o)
    : model_(std::move(model)), o_(std::move(o)) {
  const Gpt2Config& cfg = model_->config();
  if (o_.stages < 1) throw ProfileError({}, "/parallel/pipeline_stages", "expected at least 1");
  if (o_.microBatches < 1) throw ProfileError({}, "/parallel/micro_batches", "expected at least 1");
  if (o_.dataParallel < 1) throw ProfileError({}, "/parallel/data_parallel", "expected at least 1");
  if (o_.precision == Precision::Fp16)
    throw InputError("/stages/precision", "fp16 needs a loss scaler, which the pipeline trainer does not have",
                     "use bf16 (same speed on H100, no scaling)");
  layout_.stages = o_.stages;
  layout_.replicas = o_.dataParallel;
  const int world = layout_.worldSize();
  layout_.localRanks = o_.localRanks;
  if (layout_.localRanks.empty())
    for (int r = 0; r < world; ++r) layout_.localRanks.push_back(r);
  for (int r : layout_.localRanks)
    if (r < 0 || r >= world) throw RunError("pipeline", "no rank " + std::to_string(r) + " in a world of " +
                                                            std::to_string(world));
  const torch::Device home = model_->parameters().front().device();
  if (!o_.devices.empty() && o_.devices.size() != static_cast<size_t>(world))
    throw RunError("pipeline", "need one device per rank (" + std::to_string(world) + "), got " +
                                   std::to_string(o_.devices.size()));
  layout_.devices = o_.devices.empty() ? std::vector<torch::Device>(static_cast<size_t>(world), home) : o_.devices;

  const auto costs = partitionCosts(*model_);
  if (!o_.balance.empty() && static_cast<int>(o_.balance.size()) != o_.stages)
    throw ProfileError({}, "/parallel/balance",
                       "lists " + std::to_string(o_.balance.size()) +
                           " stages but pipeline_stages is " + std::to_string(o_.stages));
  plan_ = o_.balance.empty()
              ? balancedPartition(costs.halves, costs.embeddings, costs.head, o_.stages)
              : explicitPartition(costs.halves, costs.embeddings, costs.head, o_.balance);
  if (o_.checkpoint && (cfg.embdPdrop > 0 || cfg.attnPdrop > 0 || cfg.residPdrop > 0))
    throw ProfileError(
        {}, "/parallel/checkpoint",
        "activation checkpointing recomputes dropout masks from a shared RNG, so it needs "
        "dropout 0 (resid_pdrop, embd_pdrop, attn_pdrop) in this build");

  // One model per local replica: the first is the given model, the others copies made
  // before any stage moves modules to its device.
  replicaModels_.assign(static_cast<size_t>(o_.dataParallel), Gpt2(nullptr));
  for (int r : layout_.localRanks) {
    auto& m = replicaModels_[static_cast<size_t>(layout_.replicaOf(r))];
    if (m.is_empty()) {
      bool given = true;
      for (const auto& other : replicaModels_)
        if (!other.is_empty()) given = false;
      m = given ? model_ : cloneModel(model_);
    }
  }
  for (int r : layout_.localRanks) {
    auto rk = std::make_unique<Rank>();
    rk->rank = r;
    rk->slot = ranks_.size();
    rk->stage = layout_.stageOf(r);
    rk->replica = layout_.replicaOf(r);
    rk->device = layout_.devices[static_cast<size_t>(r)];
    rk->st = std::make_unique<PipelineStage>(replicaModels_[static_cast<size_t>(rk->replica)],
                                             plan_[static_cast<size_t>(rk->stage)], rk->stage, o_.stages,
                                             rk->device, o_.checkpoint);
    rk->opt = std::make_unique<AdamW>(rk->st->parameters(), o_.adamw);
    rk->program = buildSchedule(o_.schedule, o_.stages, o_.microBatches, rk->stage);
    for (size_t i = 0; i < rk->program.size(); ++i)
      if (rk->program[i].op == OpKind::Backward) rk->lastBackward = i;
    if (o_.dataParallel > 1) rk->grads = std::make_unique<GradBuckets>(rk->st->parameters(), o_.bucketBytes);
    ranks_.push_back(std::move(rk));
  }
}

PipelineEngine::~PipelineEngine() {
  // Left by an exception (cancel between passes, a failed stage): the peers may never
  // reach a clean teardown, so abort instead of finalizing (which waits for them).
  if (backend_ && std::uncaught_exceptions() > 0) backend_->abort("engine left by an exception");
}

bool PipelineEngine::hasStage(int s) const {
  for (const auto& rk : ranks_)
    if (rk->stage == s) return true;
  return false;
}

PipelineStage& PipelineEngine::stage(int s) {
  for (auto& rk : ranks_)  // ranks_ is in rank order: the lowest replica comes first
    if (rk->stage == s) return *rk->st;
  throw RunError("pipeline", "stage " + std::to_string(s) + " is not run by this process");
}

PipelineStage& PipelineEngine::stageOfRank(int rank) {
  for (auto& rk : ranks_)
    if (rk->rank == rank) return *rk->st;
  throw RunError("pipeline", "rank " + std::to_string(rank) + " is not run by this process");
}

const AdamW& PipelineEngine::optimizer(int s) const {
  for (const auto& rk : ranks_)
    if (rk->stage == s) return *rk->opt;
  throw RunError("pipeline", "stage " + std::to_string(s) + " is not run by this process");
}

Gpt2 PipelineEngine::replicaModel(int r) const { return replicaModels_.at(static_cast<size_t>(r)); }

CommBackend& PipelineEngine::backend() {
  // A backend that was aborted (cancel, a failed pass) is replaced on the next use.
  if (backend_ && backend_->aborted()) backend_.reset();
  if (!backend_) backend_ = o_.comm ? o_.comm(layout_) : makeInProcessBackend(layout_);
  return *backend_;
}

std::string PipelineEngine::backendName() { return backend().name(); }

void PipelineEngine::onEveryRank(const std::function<void(Rank&, CommBackend&)>& fn, const CancelToken& cancel) {
  CommBackend& comm = backend();
  const int n = static_cast<int>(ranks_.size());
  std::mutex mutex;
  std::condition_variable finished;
  int running = n;
  std::exception_ptr firstError;  // the cause, never a TransportAborted that followed it
  std::exception_ptr anyError;
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    workers.emplace_back([&, i] {
      Rank& rk = *ranks_[static_cast<size_t>(i)];
      try {
        torch::AutoGradMode grad(true);  // grad mode, device, stream and autocast are per thread
#ifdef WB_WITH_CUDA
        std::optional<compat::CudaDeviceGuard> deviceGuard;
        if (rk.device.is_cuda()) deviceGuard.emplace(rk.device);
#endif
        std::optional<compat::AutocastGuard> autocast;
        if (o_.precision != Precision::Fp32)
          autocast.emplace(c10::DeviceType::CUDA, autocastDtype(o_.precision));
        fn(rk, comm);
      } catch (const TransportAborted&) {
        std::lock_guard lock(mutex);
        if (!anyError) anyError = std::current_exception();
      } catch (...) {
        {
          std::lock_guard lock(mutex);
          if (!firstError) firstError = std::current_exception();
        }
        comm.abort("rank " + std::to_string(rk.rank) + " failed");
      }
      std::lock_guard lock(mutex);
      --running;
      finished.notify_all();
    });
  }
  // Workers poll the token between instructions; aborting the backend wakes the ones
  // blocked in a receive (or waiting on the device) at once. The last worker wakes us
  // (no polling delay added to every call: a step makes several of them).
  {
    std::unique_lock lock(mutex);
    while (running > 0) {
      if (cancel.cancelled()) {
        lock.unlock();
        comm.abort("cancelled");
        lock.lock();
      }
      finished.wait_for(lock, std::chrono::milliseconds(2), [&] { return running == 0; });
    }
  }
  for (auto& w : workers) w.join();
  if (cancel.cancelled() || firstError || anyError) {
    for (auto& rk : ranks_) rk->st->dropSaved();
    if (cancel.cancelled()) throw Cancelled();
    std::rethrow_exception(firstError ? firstError : anyError);
  }
  if (comm.pending() != 0)
    throw RunError("pipeline", std::to_string(comm.pending()) + " messages were sent but never received");
}

void PipelineEngine::zeroGrad() {
  onEveryRank([](Rank& rk, CommBackend&) { rk.opt->zeroGrad(); }, CancelToken());
}

PassResult PipelineEngine::forwardBackward(const torch::Tensor& x, const torch::Tensor& y,
                                           double lossDivisor, const CancelToken& cancel, bool reduce) {
  const int n = o_.stages, d = o_.dataParallel;
  const int64_t m = o_.microBatches;
  if (x.dim() != 2 || x.sizes() != y.sizes())
    throw RunError("pipeline", "expected x and y of the same shape [B, T]");
  const int64_t perReplica = x.size(0) / d;
  const int64_t rows = perReplica / m, seqLen = x.size(1);
  if (rows * m * d != x.size(0))
    throw ProfileError({}, "/parallel/micro_batches",
                       "batch of " + std::to_string(x.size(0)) + " rows does not split into " + std::to_string(d) +
                           " replicas x " + std::to_string(m) + " equal micro-batches");
  PassResult r;
  r.timelines.resize(static_cast<size_t>(n));
  std::vector<double> rankLoss(ranks_.size(), 0.0), rankReduce(ranks_.size(), 0.0);
  std::vector<StageTimeline> rankSpans(ranks_.size());
  for (auto& rk : ranks_) {
    rk->st->resetPeak();
    if (rk->grads) rk->grads->disarm();  // a failed pass may have left it armed
  }
  // Start from idle devices (the previous step's optimizer may still be queued), so
  // every rank's first event is the same host moment.
  if (ranks_.front()->device.is_cuda())
    onEveryRank([&](Rank& rk, CommBackend&) { SpanClock(rk.device).waitIdle([&] { cancel.throwIfCancelled(); }); },
                cancel);
  const int lowestReplica = ranks_.front()->replica;
  const bool allLocal = ranks_.size() == static_cast<size_t>(layout_.worldSize());
  // Multi-process only, summed over the world: rows [0, stages) forward, backward, comm
  // and last span end of each stage (replica 0's); rows [stages, stages + world) each
  // rank's allocated, reserved and peak device memory (MB).
  torch::Tensor gathered;
  const auto t0 = Clock::now();
  onEveryRank(
      [&](Rank& rk, CommBackend& comm) {
        Transport& ep = comm.endpoint(rk.rank);
        PipelineStage& st = *rk.st;
        const size_t slot = rk.slot;
        SpanClock clock(st.device());
        clock.start();
        std::vector<PendingSpan> spans;
        const TensorMeta inMeta = st.hiddenMeta(rows, seqLen);
        const int prev = rk.stage > 0 ? layout_.rankOf(rk.stage - 1, rk.replica) : -1;
        const int next = rk.stage + 1 < n ? layout_.rankOf(rk.stage + 1, rk.replica) : -1;
        std::vector<torch::Tensor> xs, ys;
        if (st.first()) xs = x.narrow(0, rk.replica * perReplica, perReplica).to(st.device()).split(rows, 0);
        if (st.last()) ys = y.narrow(0, rk.replica * perReplica, perReplica).to(st.device()).split(rows, 0);
        torch::Tensor lossSum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(st.device()));
        std::map<int64_t, torch::Tensor> inbox, outbox;  // received / to send, by micro-batch
        const bool overlap = reduce && d > 1 && rk.grads;
        for (size_t pc = 0; pc < rk.program.size(); ++pc) {
          const Instruction& in = rk.program[pc];
          cancel.throwIfCancelled();
          if (comm.aborted()) throw TransportAborted("another rank failed");
          if (o_.beforeInstruction) o_.beforeInstruction(rk.stage, in);
          // The last backward of the step's last pass: gradients are final as it
          // accumulates them, so their buckets are reduced while it runs.
          if (overlap && pc == rk.lastBackward) rk.grads->arm(comm.reducer(rk.rank));
          const size_t begin = clock.mark();
          const int64_t mb = in.microBatch;
          SpanKind kind = SpanKind::Comm;
          switch (in.op) {
            case OpKind::RecvActivation:
              inbox[mb] = ep.recv(prev, {mb, Direction::Activation}, inMeta);
              kind = SpanKind::Wait;
              break;
            case OpKind::Forward: {
              NvtxRange range(nvtx::kForward);
              const torch::Tensor input = st.first() ? xs[static_cast<size_t>(mb)] : inbox.at(mb);
              inbox.erase(mb);
              torch::Tensor out =
                  st.forward(mb, input, st.last() ? ys[static_cast<size_t>(mb)] : torch::Tensor(), lossDivisor);
              if (st.last()) lossSum.add_(out.to(torch::kFloat64));
              else outbox[mb] = out;
              kind = SpanKind::Forward;
              break;
            }
            case OpKind::SendActivation: {
              NvtxRange range(nvtx::kCommunication);
              ep.send(next, {mb, Direction::Activation}, outbox.at(mb));
              outbox.erase(mb);
              break;
            }
            case OpKind::RecvGradient:
              inbox[mb] = ep.recv(next, {mb, Direction::Gradient}, inMeta);
              kind = SpanKind::Wait;
              break;
            case OpKind::Backward: {
              NvtxRange range(nvtx::kBackward);
              torch::Tensor g;
              if (!st.last()) {
                g = inbox.at(mb);
                inbox.erase(mb);
              }
              g = st.backward(mb, g);
              if (!st.first()) outbox[mb] = g;
              kind = SpanKind::Backward;
              break;
            }
            case OpKind::SendGradient: {
              NvtxRange range(nvtx::kCommunication);
              ep.send(prev, {mb, Direction::Gradient}, outbox.at(mb));
              outbox.erase(mb);
              break;
            }
          }
          spans.push_back({kind, begin, clock.mark()});
        }
        if (st.live() != 0 || !inbox.empty() || !outbox.empty())
          throw RunError("pipeline", "stage " + std::to_string(rk.stage) + " ended its schedule holding micro-batches");
        // What is left of the gradient all-reduce after backward (the exposed part):
        // the buckets not started yet, and the compute stream waiting for all.
        const size_t reduceBegin = clock.mark();
        if (overlap) {
          NvtxRange range(nvtx::kCommunication);
          rk.grads->finish();
        }
        const size_t reduceEnd = clock.mark();
        // Mean over replicas of each replica's loss (only last stages contribute); after
        // the gradient reduction, so every rank issues its collectives in one order.
        torch::Tensor loss = st.last() ? lossSum / static_cast<double>(d) : torch::zeros_like(lossSum);
        ep.allReduceSum(loss);
        clock.waitIdle([&] {
          if (comm.aborted()) throw TransportAborted("aborted while waiting for the device");
          cancel.throwIfCancelled();
        });
        rankLoss[slot] = loss.item<double>();
        rankReduce[slot] = clock.seconds(reduceEnd) - clock.seconds(reduceBegin);
        for (const auto& s : spans) rankSpans[slot].push_back({s.kind, clock.seconds(s.begin), clock.seconds(s.end)});
        if (!allLocal) {
          // Under torchrun each process sees its own stage only: sum every stage's
          // totals (replica 0's) over the world so every rank reports all stages.
          const StageTiming mine = summarize(std::vector<StageTimeline>{rankSpans[slot]}).front();
          auto totals = torch::zeros({n + layout_.worldSize(), 4}, torch::TensorOptions().dtype(torch::kFloat64));
          if (rk.replica == 0) {
            auto row = totals[rk.stage];
            row[0].fill_(mine.forwardS);
            row[1].fill_(mine.backwardS);
            row[2].fill_(mine.commS);
            row[3].fill_(mine.windowS);
          }
          // Memory once per step (its last pass), from the allocator only: NVML's
          // device view is not needed here and the trainer already probes its own GPU.
          if (reduce && st.device().is_cuda()) {
            const MemorySnapshot mem = probeMemory(st.device(), /*nvml=*/false);
            auto row = totals[n + rk.rank];
            row[0].fill_(mem.cudaAllocatedMb);
            row[1].fill_(mem.cudaReservedMb);
            row[2].fill_(mem.cudaPeakMb);
          }
          totals = totals.to(st.device());
          ep.allReduceSum(totals);
          clock.waitIdle([&] {
            if (comm.aborted()) throw TransportAborted("aborted while waiting for the device");
          });
          gathered = totals.to(torch::kCPU);
        }
      },
      cancel);
  r.wallS = since(t0);
  for (size_t i = 0; i < ranks_.size(); ++i) {
    const Rank& rk = *ranks_[i];
    if (rk.replica == lowestReplica) r.timelines[static_cast<size_t>(rk.stage)] = std::move(rankSpans[i]);
    r.reduceS = std::max(r.reduceS, rankReduce[i]);
  }
  r.loss = rankLoss.front();  // the world sum: the same on every rank
  r.timing = summarize(r.timelines);
  if (gathered.defined()) {
    double window = 0.0;
    for (int s = 0; s < n; ++s) window = std::max(window, gathered[s][3].item<double>());
    for (int s = 0; s < n; ++s) {
      StageTiming& t = r.timing[static_cast<size_t>(s)];
      t.forwardS = gathered[s][0].item<double>();
      t.backwardS = gathered[s][1].item<double>();
      t.commS = gathered[s][2].item<double>();
      t.windowS = window;
      t.idleS = std::max(0.0, window - t.forwardS - t.backwardS - t.commS);
    }
    if (reduce && ranks_.front()->device.is_cuda())
      for (int64_t w = 0; w < layout_.worldSize(); ++w) {
        const auto row = gathered[n + w];
        r.rankMemory.push_back({row[0].item<double>(), row[1].item<double>(), row[2].item<double>()});
      }
  }
  r.bubble = measuredBubble(r.timing);
  r.theoreticalBubble = theoreticalBubble(n, m);
  for (int s = 0; s < n; ++s) r.peakLive.push_back(hasStage(s) ? stage(s).peakLive() : 0);
  return r;
}

void PipelineEngine::syncTiedGradients(const CancelToken& cancel) {
  const int n = stageCount();
  if (n < 2) return;
  onEveryRank(
      [&](Rank& rk, CommBackend& comm) {
        if (rk.stage != 0 && rk.stage != n - 1) return;
        torch::Tensor w = rk.st->tiedWeight();
        if (!w.defined()) return;
        if (!w.grad().defined()) w.mutable_grad() = torch::zeros_like(w);
        const int peer = layout_.rankOf(rk.stage == 0 ? n - 1 : 0, rk.replica);
        torch::Tensor theirs = comm.endpoint(rk.rank).exchange(peer, {0, Direction::TiedGradient}, w.grad());
        // Addition commutes exactly, so both ends hold the same bits afterwards.
        w.mutable_grad().add_(theirs.to(w.device()));
      },
      cancel);
}

double PipelineEngine::clipGradNorm(double maxNorm, const CancelToken& cancel) {
  std::vector<double> norms(ranks_.size(), 0.0);
  onEveryRank(
      [&](Rank& rk, CommBackend& comm) {
        torch::NoGradGuard noGrad;
        std::vector<torch::Tensor> grads, all;
        for (const auto& [name, p] : rk.st->parameters()) {
          if (!p.grad().defined()) continue;
          all.push_back(p.grad());
          if (rk.st->ownsTiedCopy() && p.is_same(rk.st->tiedWeight())) continue;  // counted on stage 0
          grads.push_back(p.grad());
        }
        // Replicas hold the same gradients after the all-reduce: count replica 0's only.
        torch::Tensor sq = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(rk.device));
        if (rk.replica == 0 && !grads.empty()) sq = compat::totalNorm(grads).to(torch::kFloat64).square();
        comm.endpoint(rk.rank).allReduceSum(sq);
        // clip_grad_norm_'s rule kept on the device (as Trainer): the norm is read back
        // after the scaling is queued, so the device does not idle while the host waits.
        const torch::Tensor norm = sq.sqrt();
        if (std::isfinite(maxNorm)) {
          const torch::Tensor coef = (maxNorm / (norm + 1e-6)).clamp_max(1.0).to(torch::kFloat32);
          compat::scaleAll(all, coef);
        }
        norms[rk.slot] = norm.item<double>();
      },
      cancel);
  return norms.front();
}

void PipelineEngine::gatherModel(const CancelToken& cancel) {
  if (ranks_.size() == static_cast<size_t>(layout_.worldSize())) return;
  onEveryRank(
      [&](Rank& rk, CommBackend& comm) {
        torch::NoGradGuard noGrad;
        std::set<std::string> owned;
        if (rk.replica == 0)
          for (const auto& [name, p] : rk.st->parameters()) owned.insert(name);
        // Every rank walks the same names in the same order (frozen ones are equal on
        // every rank already), as the world sums need.
        for (auto& item : replicaModels_[static_cast<size_t>(rk.replica)]->named_parameters()) {
          torch::Tensor& p = item.value();
          if (!p.requires_grad()) continue;
          p.copy_(fromOwner(comm.endpoint(rk.rank), owned.count(item.key()) ? p : torch::Tensor(), p, rk.device));
        }
      },
      cancel);
}

std::vector<std::pair<std::string, torch::Tensor>> PipelineEngine::gatherOptimizerState(const CancelToken& cancel) {
  const bool allLocal = ranks_.size() == static_cast<size_t>(layout_.worldSize());
  std::vector<std::pair<std::string, torch::Tensor>> out;
  std::mutex outMutex;
  onEveryRank(
      [&](Rank& rk, CommBackend& comm) {
        torch::NoGradGuard noGrad;
        std::map<std::string, torch::Tensor> mine;
        if (rk.replica == 0)
          for (auto& [name, t] : rk.opt->stateTensors()) mine.emplace(name, t);
        std::vector<std::pair<std::string, torch::Tensor>> part;
        if (allLocal) {
          const bool tiedCopy = rk.st->ownsTiedCopy();
          for (auto& [name, t] : mine)
            if (!(tiedCopy && name.ends_with(std::string(".") + PipelineStage::kTiedCopy)))
              part.emplace_back(name, t.to(torch::kCPU));
        } else {
          // Every rank walks every trainable parameter's two moments in one order.
          for (auto& item : replicaModels_[static_cast<size_t>(rk.replica)]->named_parameters()) {
            const torch::Tensor& p = item.value();
            if (!p.requires_grad()) continue;
            for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
              const std::string name = kind + item.key();
              const auto it = mine.find(name);
              const torch::Tensor t =
                  fromOwner(comm.endpoint(rk.rank), it != mine.end() ? it->second : torch::Tensor(), p, rk.device);
              // Only rank 0 writes checkpoints: the others need no host copy (for
              // GPT-2 XL that would be 12 GB per process).
              if (rk.rank == 0) part.emplace_back(name, t.to(torch::kCPU));
            }
          }
        }
        std::lock_guard<std::mutex> lock(outMutex);
        for (auto& e : part) out.push_back(std::move(e));
      },
      cancel);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

void PipelineEngine::loadOptimizerState(const std::map<std::string, torch::Tensor>& state, int64_t steps) {
  for (auto& rk : ranks_) {
    if (!rk->st->ownsTiedCopy()) {
      rk->opt->loadState(state, steps);
      continue;
    }
    std::map<std::string, torch::Tensor> withCopy = state;
    for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
      const auto it = state.find(std::string(kind) + "transformer.wte.weight");
      if (it != state.end()) withCopy[std::string(kind) + PipelineStage::kTiedCopy] = it->second;
    }
    rk->opt->loadState(withCopy, steps);
  }
}

int64_t PipelineEngine::optimizerSteps() const { return ranks_.front()->opt->steps(); }

void PipelineEngine::reloadFromModel() {
  torch::NoGradGuard noGrad;
  for (auto& m : replicaModels_) {
    if (m.is_empty() || m.get() == model_.get()) continue;
    auto from = model_->named_parameters();
    for (auto& item : m->named_parameters()) item.value().copy_(from[item.key()]);
  }
  for (auto& rk : ranks_) rk->st->refreshTiedCopy();
}

bool PipelineEngine::drivesRankZero() const {
  return std::find(layout_.localRanks.begin(), layout_.localRanks.end(), 0) != layout_.localRanks.end();
}

void PipelineEngine::step(double lr, const CancelToken& cancel) {
  onEveryRank(
      [&](Rank& rk, CommBackend&) {
        NvtxRange range(nvtx::kOptimizer);
        rk.opt->step(lr);
      },
      cancel);
}

}  // namespace wb
