// CUDA-graph decode; see graph_decode.h.
#include "core/model/graph_decode.h"

#include <algorithm>

#include "core/errors.h"

#ifdef WB_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace wb {

namespace {

torch::Tensor promptTensor(const std::vector<int64_t>& prompt, const torch::Device& device) {
  return torch::tensor(prompt, torch::kLong).unsqueeze(0).to(device);
}

}  // namespace

std::vector<int64_t> eagerGreedy(Gpt2& model, const std::vector<int64_t>& prompt, int64_t newTokens) {
  if (prompt.empty() || newTokens < 1) throw InputError("decode", "needs a prompt and at least one new token");
  torch::NoGradGuard noGrad;
  model->eval();
  const auto param = model->parameters().front();
  KvCache cache = model->makeCache(1, static_cast<int64_t>(prompt.size()) + newTokens, param.options());
  auto logits = model->forward(promptTensor(prompt, param.device()), &cache);
  auto next = logits.select(1, logits.size(1) - 1).argmax(-1, true);  // [1, 1]
  std::vector<torch::Tensor> out{next};
  for (int64_t i = 1; i < newTokens; ++i) {
    logits = model->forward(next, &cache);
    next = logits.select(1, 0).argmax(-1, true);
    out.push_back(next);
  }
  const auto all = torch::cat(out, 1).to(torch::kCPU).contiguous();
  return {all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + all.numel()};
}

#ifdef WB_WITH_CUDA

struct GraphDecoder::Impl {
  Gpt2 model{nullptr};
  KvCache cache;
  torch::Tensor ids;  // [1, 1] the token the next step reads
  torch::Tensor out;  // [capacity] out[p] = token generated for position p
  torch::Tensor staticPosition;  // held aside while the prefill runs the ordinary path
  torch::Tensor logits;          // the captured step's logits (graph memory, rewritten by each replay)
  std::unique_ptr<FusedDecoder> fused;
  at::cuda::CUDAGraph graph;
  at::cuda::CUDAGraph multiGraph;  // stepsPerGraph steps (fused, stepsPerGraph > 1)
  int64_t multiSteps = 1;

  // One decode step; identical work in warm-up, capture and (through the graph) replay.
  void step() {
    if (fused) {  // the same four effects in 5 L + 1 kernels
      fused->step(cache, ids, out);
      logits = fused->logits();
      return;
    }
    logits = model->forward(ids, &cache);               // reads position, then advances it
    auto next = logits.view({-1}).argmax(0).view({1});  // [1]
    ids.copy_(next.view({1, 1}));
    out.index_copy_(0, cache.position, next);  // the slot this token will occupy
  }
};

GraphDecoder::GraphDecoder(Gpt2 model, int64_t capacity, const GraphDecodeOptions& options)
    : impl_(std::make_unique<Impl>()) {
  const auto param = model->parameters().front();
  if (!param.is_cuda())
    throw InputError("cuda graph decode", "the model must be on a CUDA device (it is on " + param.device().str() + ")");
  if (options.stepsPerGraph < 1) throw InputError("cuda graph decode", "stepsPerGraph must be at least 1");
  if (capacity < 4 || capacity > model->config().nPositions)
    throw InputError("cuda graph decode", "capacity must be in [4, n_positions = " +
                                              std::to_string(model->config().nPositions) + "]");
  torch::NoGradGuard noGrad;
  model->eval();
  capacity_ = capacity;
  auto& m = *impl_;
  m.model = model;
  const auto device = param.device();
  c10::cuda::CUDAGuard deviceGuard(device);
  m.cache = model->makeCache(1, capacity, param.options());
  m.ids = torch::zeros({1, 1}, torch::TensorOptions().dtype(torch::kLong).device(device));
  m.out = torch::zeros({capacity}, torch::TensorOptions().dtype(torch::kLong).device(device));
  model->useStaticPosition(m.cache);
  if (options.fused) m.fused = std::make_unique<FusedDecoder>(model, capacity, options.fusedOptions);
  // Warm up on the capture stream first: cuBLAS workspaces and lazily created kernels
  // must exist before capture, and on the stream that will be captured.
  c10::cuda::device_synchronize();
  auto stream = c10::cuda::getStreamFromPool(false, device.index());
  {
    c10::cuda::CUDAStreamGuard streamGuard(stream);
    for (int i = 0; i < 2; ++i) m.step();
    m.cache.position.fill_(0);
    stream.synchronize();
    m.graph.capture_begin();
    m.step();
    m.graph.capture_end();
    if (m.fused && options.stepsPerGraph > 1) {
      m.multiSteps = std::min(options.stepsPerGraph, capacity);
      m.multiGraph.capture_begin(m.graph.pool());
      for (int64_t i = 0; i < m.multiSteps; ++i) m.step();
      m.multiGraph.capture_end();
    }
  }
  c10::cuda::device_synchronize();
}

GraphDecoder::~GraphDecoder() = default;

void GraphDecoder::prefill(const std::vector<int64_t>& prompt) {
  auto& m = *impl_;
  const auto n = static_cast<int64_t>(prompt.size());
  if (n < 1 || n >= capacity_)
    throw InputError("cuda graph decode", "prompt of " + std::to_string(n) + " tokens must be in [1, capacity = " +
                                              std::to_string(capacity_) + ")");
  torch::NoGradGuard noGrad;
  // The ordinary path writes positions [0, n); the static position is set after it.
  m.staticPosition = m.cache.position;
  m.cache.position = torch::Tensor();
  m.cache.length = 0;
  auto logits = m.model->forward(promptTensor(prompt, m.ids.device()), &m.cache);
  m.cache.position = m.staticPosition;
  m.cache.position.fill_(n);
  auto next = logits.select(1, n - 1).argmax(-1, true);  // [1, 1]
  m.ids.copy_(next);
  m.out.narrow(0, n, 1).copy_(next.view({1}));
  promptLength_ = n;
  replays_ = 0;
}

void GraphDecoder::replay(int64_t steps) {
  if (promptLength_ == 0) throw InputError("cuda graph decode", "prefill a prompt first");
  if (promptLength_ + 1 + replays_ + steps > capacity_)
    throw InputError("cuda graph decode", "prompt + new tokens exceed the capacity of " + std::to_string(capacity_));
  auto& m = *impl_;
  int64_t left = steps;
  for (; m.multiSteps > 1 && left >= m.multiSteps; left -= m.multiSteps) m.multiGraph.replay();
  for (; left > 0; --left) m.graph.replay();
  replays_ += steps;
}

std::vector<int64_t> GraphDecoder::generated() const {
  const auto t = impl_->out.narrow(0, promptLength_, replays_ + 1).to(torch::kCPU).contiguous();
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()};
}

torch::Tensor GraphDecoder::lastLogits() const {
  if (!impl_->logits.defined()) return {};
  return impl_->logits.reshape({-1}).clone();
}

int64_t GraphDecoder::fusedWeightBytes() const { return impl_->fused ? impl_->fused->weightBytes() : 0; }
bool GraphDecoder::fusedPersistent() const { return impl_->fused && impl_->fused->persistentActive(); }
bool GraphDecoder::fusedAttentionBlock() const { return impl_->fused && impl_->fused->attentionBlockActive(); }
bool GraphDecoder::fusedMlpBlock() const { return impl_->fused && impl_->fused->mlpBlockActive(); }
bool GraphDecoder::fusedLmHeadTiles() const { return impl_->fused && impl_->fused->lmHeadTilesActive(); }

#else

struct GraphDecoder::Impl {};

GraphDecoder::GraphDecoder(Gpt2, int64_t, const GraphDecodeOptions&) {
  throw InputError("cuda graph decode", "this build has no CUDA support (LibTorch " + compat::torchVersion() + ")",
                   "build with the cuda preset on a machine with a GPU");
}
GraphDecoder::~GraphDecoder() = default;
void GraphDecoder::prefill(const std::vector<int64_t>&) {}
void GraphDecoder::replay(int64_t) {}
std::vector<int64_t> GraphDecoder::generated() const { return {}; }
torch::Tensor GraphDecoder::lastLogits() const { return {}; }
int64_t GraphDecoder::fusedWeightBytes() const { return 0; }
bool GraphDecoder::fusedPersistent() const { return false; }
bool GraphDecoder::fusedAttentionBlock() const { return false; }
bool GraphDecoder::fusedMlpBlock() const { return false; }
bool GraphDecoder::fusedLmHeadTiles() const { return false; }

#endif

std::vector<int64_t> GraphDecoder::greedy(const std::vector<int64_t>& prompt, int64_t newTokens) {
  if (newTokens < 1) throw InputError("cuda graph decode", "needs at least one new token");
  prefill(prompt);
  replay(newTokens - 1);
  return generated();
}

}  // namespace wb
