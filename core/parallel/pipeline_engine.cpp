// Pipeline execution on worker threads; see pipeline_engine.h.
#include "core/parallel/pipeline_engine.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "core/errors.h"
#include "core/parallel/in_process_transport.h"
#include "core/run/profile.h"

namespace wb {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

PartitionCosts partitionCosts(Gpt2Impl& model) {
  PartitionCosts c;
  auto count = [](torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  };
  auto& tr = *model.transformer;
  for (size_t l = 0; l < tr.h->size(); ++l) c.layers.push_back(count(*tr.h->ptr(l)));
  c.embeddings = count(*tr.wte) + count(*tr.wpe);
  // The head costs its weight whether tied (a copy on the last stage) or not.
  c.head = count(*tr.ln_f) + model.config().vocabSize * model.config().nEmbd;
  return c;
}

PipelineEngine::PipelineEngine(Gpt2 model, PipelineOptions o)
    : model_(std::move(model)), o_(std::move(o)) {
  const Gpt2Config& cfg = model_->config();
  if (o_.microBatches < 1) throw ProfileError({}, "/parallel/micro_batches", "expected at least 1");
  const auto costs = partitionCosts(*model_);
  if (!o_.balance.empty() && static_cast<int>(o_.balance.size()) != o_.stages)
    throw ProfileError({}, "/parallel/balance",
                       "lists " + std::to_string(o_.balance.size()) +
                           " stages but pipeline_stages is " + std::to_string(o_.stages));
  plan_ = o_.balance.empty()
              ? balancedPartition(costs.layers, costs.embeddings, costs.head, o_.stages)
              : explicitPartition(costs.layers, costs.embeddings, costs.head, o_.balance);
  if (o_.checkpoint && (cfg.embdPdrop > 0 || cfg.attnPdrop > 0 || cfg.residPdrop > 0))
    throw ProfileError(
        {}, "/parallel/checkpoint",
        "activation checkpointing recomputes dropout masks from a shared RNG, so it needs "
        "dropout 0 (resid_pdrop, embd_pdrop, attn_pdrop) in this build");
  if (!o_.devices.empty() && o_.devices.size() != static_cast<size_t>(o_.stages))
    throw RunError("pipeline", "need one device per stage");
  const torch::Device home = model_->parameters().front().device();
  for (int s = 0; s < o_.stages; ++s) {
    const torch::Device dev = o_.devices.empty() ? home : o_.devices[static_cast<size_t>(s)];
    stages_.push_back(std::make_unique<PipelineStage>(model_, plan_[static_cast<size_t>(s)], s,
                                                      o_.stages, dev, o_.checkpoint));
    optimizers_.push_back(std::make_unique<AdamW>(stages_.back()->parameters(), o_.adamw));
    programs_.push_back(buildSchedule(o_.schedule, o_.stages, o_.microBatches, s));
  }
}

PipelineEngine::~PipelineEngine() = default;

void PipelineEngine::zeroGrad() {
  for (auto& opt : optimizers_) opt->zeroGrad();
}

void PipelineEngine::onEveryStage(const std::function<void(int, Transport&)>& fn,
                                  const CancelToken& cancel) {
  const int n = stageCount();
  auto hub = InProcessHub::create(n);
  std::mutex mutex;
  std::condition_variable finished;
  int running = n;
  std::exception_ptr firstError;  // the cause, never a TransportAborted that followed it
  std::exception_ptr anyError;
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(n));
  for (int s = 0; s < n; ++s) {
    workers.emplace_back([&, s] {
      try {
        torch::AutoGradMode grad(true);  // grad mode is per thread
        auto ep = hub->endpoint(s);
        fn(s, *ep);
      } catch (const TransportAborted&) {
        std::lock_guard lock(mutex);
        if (!anyError) anyError = std::current_exception();
      } catch (...) {
        {
          std::lock_guard lock(mutex);
          if (!firstError) firstError = std::current_exception();
        }
        hub->abort("stage " + std::to_string(s) + " failed");
      }
      std::lock_guard lock(mutex);
      --running;
      finished.notify_all();
    });
  }
  {
    // Workers poll the token between instructions; this wakes the ones blocked in a
    // receive at once.
    std::unique_lock lock(mutex);
    while (!finished.wait_for(lock, std::chrono::milliseconds(10), [&] { return running == 0; }))
      if (cancel.cancelled()) hub->abort("cancelled");
  }
  for (auto& w : workers) w.join();
  if (cancel.cancelled()) {
    for (auto& st : stages_) st->dropSaved();
    throw Cancelled();
  }
  if (firstError || anyError) {
    for (auto& st : stages_) st->dropSaved();
    std::rethrow_exception(firstError ? firstError : anyError);
  }
  if (hub->pending() != 0)
    throw RunError("pipeline",
                   std::to_string(hub->pending()) + " messages were sent but never received");
}

PassResult PipelineEngine::forwardBackward(const torch::Tensor& x, const torch::Tensor& y,
                                           double lossDivisor, const CancelToken& cancel) {
  const int n = stageCount();
  const int64_t m = o_.microBatches;
  if (x.dim() != 2 || x.sizes() != y.sizes())
    throw RunError("pipeline", "expected x and y of the same shape [B, T]");
  const int64_t rows = x.size(0) / m, seqLen = x.size(1);
  if (rows * m != x.size(0))
    throw ProfileError({}, "/parallel/micro_batches",
                       "batch of " + std::to_string(x.size(0)) + " rows does not split into " +
                           std::to_string(m) + " equal micro-batches");
  const auto xs = x.to(stage(0).device()).split(rows, 0);
  const auto ys = y.to(stage(n - 1).device()).split(rows, 0);
  PassResult r;
  r.timelines.resize(static_cast<size_t>(n));
  std::vector<double> stageLoss(static_cast<size_t>(n), 0.0);
  for (auto& st : stages_) st->resetPeak();
  const auto t0 = Clock::now();
  onEveryStage(
      [&](int s, Transport& ep) {
        PipelineStage& st = stage(s);
        StageTimeline& spans = r.timelines[static_cast<size_t>(s)];
        const TensorMeta inMeta = st.hiddenMeta(rows, seqLen);
        std::map<int64_t, torch::Tensor> inbox, outbox;  // received / to send, by micro-batch
        for (const Instruction& in : programs_[static_cast<size_t>(s)]) {
          cancel.throwIfCancelled();
          if (o_.beforeInstruction) o_.beforeInstruction(s, in);
          const double begin = since(t0);
          const int64_t mb = in.microBatch;
          switch (in.op) {
            case OpKind::RecvActivation:
              inbox[mb] = ep.recv(s - 1, {mb, Direction::Activation}, inMeta);
              spans.push_back({SpanKind::Wait, begin, since(t0)});
              break;
            case OpKind::Forward: {
              const torch::Tensor input = st.first() ? xs[static_cast<size_t>(mb)] : inbox.at(mb);
              inbox.erase(mb);
              torch::Tensor out =
                  st.forward(mb, input, st.last() ? ys[static_cast<size_t>(mb)] : torch::Tensor(),
                             lossDivisor);
              if (st.last()) {
                stageLoss[static_cast<size_t>(s)] += out.item<double>();
              } else {
                outbox[mb] = out;
              }
              spans.push_back({SpanKind::Forward, begin, since(t0)});
              break;
            }
            case OpKind::SendActivation:
              ep.send(s + 1, {mb, Direction::Activation}, outbox.at(mb));
              outbox.erase(mb);
              spans.push_back({SpanKind::Comm, begin, since(t0)});
              break;
            case OpKind::RecvGradient:
              inbox[mb] = ep.recv(s + 1, {mb, Direction::Gradient}, inMeta);
              spans.push_back({SpanKind::Wait, begin, since(t0)});
              break;
            case OpKind::Backward: {
              torch::Tensor g;
              if (!st.last()) {
                g = inbox.at(mb);
                inbox.erase(mb);
              }
              g = st.backward(mb, g);
              if (!st.first()) outbox[mb] = g;
              spans.push_back({SpanKind::Backward, begin, since(t0)});
              break;
            }
            case OpKind::SendGradient:
              ep.send(s - 1, {mb, Direction::Gradient}, outbox.at(mb));
              outbox.erase(mb);
              spans.push_back({SpanKind::Comm, begin, since(t0)});
              break;
          }
        }
        if (st.live() != 0 || !inbox.empty() || !outbox.empty())
          throw RunError("pipeline", "stage " + std::to_string(s) +
                                         " ended its schedule holding micro-batches");
      },
      cancel);
  r.wallS = since(t0);
  for (double l : stageLoss) r.loss += l;
  r.timing = summarize(r.timelines);
  r.bubble = measuredBubble(r.timing);
  r.theoreticalBubble = theoreticalBubble(n, m);
  for (auto& st : stages_) r.peakLive.push_back(st->peakLive());
  return r;
}

void PipelineEngine::syncTiedGradients(const CancelToken& cancel) {
  const int n = stageCount();
  if (n < 2 || !stage(0).tiedWeight().defined()) return;
  onEveryStage(
      [&](int s, Transport& ep) {
        if (s != 0 && s != n - 1) return;
        torch::Tensor w = stage(s).tiedWeight();
        if (!w.grad().defined()) w.mutable_grad() = torch::zeros_like(w);
        torch::Tensor theirs =
            ep.exchange(s == 0 ? n - 1 : 0, {0, Direction::TiedGradient}, w.grad());
        // Addition commutes exactly, so both ends hold the same bits afterwards.
        w.mutable_grad().add_(theirs.to(w.device()));
      },
      cancel);
}

double PipelineEngine::clipGradNorm(double maxNorm) {
  torch::NoGradGuard noGrad;
  double sumSq = 0.0;
  for (auto& st : stages_)
    for (const auto& [name, p] : st->parameters()) {
      if (st->ownsTiedCopy() && p.is_same(st->tiedWeight())) continue;  // counted on stage 0
      if (p.grad().defined()) sumSq += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
    }
  const double norm = std::sqrt(sumSq);
  const double coef = maxNorm / (norm + 1e-6);
  if (coef < 1.0)
    for (auto& st : stages_)
      for (const auto& [name, p] : st->parameters())
        if (p.grad().defined()) p.mutable_grad().mul_(coef);
  return norm;
}

void PipelineEngine::step(double lr) {
  for (auto& opt : optimizers_) opt->step(lr);
}

}  // namespace wb
