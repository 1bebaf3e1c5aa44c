// Softmax cross-entropy of one logits chunk; see softmax_xent.h.
#include "core/train/softmax_xent.h"

#include <limits>

#include "core/kernels_bridge/softmax_xent_cuda.h"

namespace wb {

SoftmaxXent softmaxXentReference(torch::Tensor logits, const torch::Tensor& targets, const torch::Tensor& valid,
                                 int64_t vocab, bool wantGrad) {
  const auto dtype = logits.scalar_type();
  const int64_t ld = logits.size(1);
  auto logp = logits.to(torch::kFloat32);
  logits.reset();  // the 16-bit copy goes before log_softmax allocates its output
  // Padding columns get probability exactly 0: exp(-inf) adds nothing to the sums.
  if (ld != vocab) logp.narrow(1, vocab, ld - vocab).fill_(-std::numeric_limits<float>::infinity());
  logp = torch::log_softmax(logp, 1);
  const auto t = targets.unsqueeze(1);
  SoftmaxXent out;
  out.rowLoss = logp.gather(1, t).squeeze(1).neg_().mul_(valid);
  if (!wantGrad) return out;
  // softmax - onehot(target), formed in fp32 so entries near p = 1 keep their precision
  // before the cast; exp_ reuses the log-probabilities' storage.
  auto p = logp.exp_();
  p.scatter_add_(1, t, valid.neg().unsqueeze(1));
  out.grad = p.to(dtype);
  return out;
}

SoftmaxXent softmaxXent(torch::Tensor logits, const torch::Tensor& targets, const torch::Tensor& valid, int64_t vocab,
                        bool wantGrad, XentImpl impl) {
  const bool kernel =
      impl == XentImpl::Kernel ||
      (impl == XentImpl::Auto && softmaxXentKernelBuilt() && softmaxXentKernelFits(logits));
  if (!kernel) return softmaxXentReference(std::move(logits), targets, valid, vocab, wantGrad);
  SoftmaxXent out;
  out.rowLoss = softmaxXentCuda(logits, targets, valid, vocab, wantGrad);
  if (wantGrad) out.grad = std::move(logits);
  return out;
}

}  // namespace wb
