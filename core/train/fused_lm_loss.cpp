// Chunked LM head + cross-entropy with the gradients formed in the forward pass; see
// fused_lm_loss.h.
#include "core/train/fused_lm_loss.h"

#include <algorithm>
#include <string>

#include "core/errors.h"
#include "core/model/vocab_padding.h"
#include "core/train/softmax_xent.h"

namespace wb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The loss is a scalar, so d loss / d (hidden, weight) for an upstream gradient of 1 can
// be formed chunk by chunk while the chunk's probabilities are at hand; backward then
// only multiplies the two saved tensors by the upstream gradient.
class FusedLmHeadLossFunction : public torch::autograd::Function<FusedLmHeadLossFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t computeDtype, int64_t chunkRows,
                               int64_t ignoreIndex, int64_t xentImpl, bool needHidden, bool needWeight) {
    const auto cd = static_cast<c10::ScalarType>(computeDtype);
    const auto f32 = hidden.options().dtype(torch::kFloat32);
    const int64_t d = hidden.size(-1);
    const auto h = hidden.reshape({-1, d});
    const auto t = targets.reshape({-1});
    const int64_t n = h.size(0);
    // The vocabulary padded (vocab_padding.h: GPT-2's odd 50257 sent these matmuls to
    // slow unaligned kernels, ~32 of an 83 ms step on H100).
    const int64_t vocab = weight.size(0), padded = paddedVocab(vocab);
    const auto w = padVocabRows(weight.to(cd));  // [padded, d], cast once for every chunk
    const auto valid = t.ne(ignoreIndex);
    const auto validF = valid.to(torch::kFloat32);
    // Read on the device only: no host synchronisation for the mean's denominator.
    const auto count = validF.sum();
    // d mean / d row-loss; ignored rows get 0, so their (unmasked) softmax rows vanish.
    const auto rowScale = validF / count.clamp_min(1.0);
    const auto safeTargets = t.masked_fill(valid.logical_not(), 0);
    auto lossSum = torch::zeros({}, f32);
    torch::Tensor dh, dw;
    if (needHidden) dh = torch::empty({n, d}, hidden.options());
    if (needWeight) dw = torch::zeros({padded, d}, weight.options());
    for (int64_t r0 = 0; r0 < n; r0 += chunkRows) {
      const int64_t rows = std::min(chunkRows, n - r0);
      const auto hc = h.narrow(0, r0, rows).to(cd);
      const auto tc = safeTargets.narrow(0, r0, rows);
      const auto vc = validF.narrow(0, r0, rows);
      // The logits exist for this chunk only; the loss kernel turns them into the
      // gradient in place (softmax_xent.h), the reference path into an fp32 copy.
      auto xent = softmaxXent(torch::mm(hc, w.t()), tc, vc, vocab, needHidden || needWeight,
                              static_cast<XentImpl>(xentImpl));
      lossSum.add_(xent.rowLoss.sum());
      if (!needHidden && !needWeight) continue;
      const auto& g = xent.grad;  // [rows, padded] softmax - onehot, not yet scaled by rowScale
      const auto sc = rowScale.narrow(0, r0, rows).unsqueeze(1);
      // Scaling the [rows, d] factors instead of g saves a pass over [rows, vocab].
      if (needHidden) dh.narrow(0, r0, rows).copy_(torch::mm(g, w) * sc);
      if (needWeight) {
        // Masked but not yet divided by the count: h / count would leave fp16's normal
        // range (count ~ 16K rows), and so would the partial sums; divided once below.
        const auto hs = (hc * vc.unsqueeze(1)).to(cd);
        if (cd == dw.scalar_type()) dw.addmm_(g.t(), hs);
        else dw.add_(torch::mm(g.t(), hs));
      }
    }
    if (dw.defined()) dw = dw.narrow(0, 0, vocab).div_(count.clamp_min(1.0));
    if (dh.defined()) dh = dh.view(hidden.sizes());
    // Neither an input nor an output, and never modified: plain saved data (which, unlike
    // save_for_backward, takes an undefined tensor for a gradient that is not needed).
    ctx->saved_data["dh"] = dh;
    ctx->saved_data["dw"] = dw;
    // 0 / 0 = NaN when every target is ignored, as cross_entropy's mean.
    return lossSum / count;
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOutputs) {
    const auto& g = gradOutputs[0];
    torch::Tensor dh = ctx->saved_data["dh"].toTensor(), dw = ctx->saved_data["dw"].toTensor();
    if (dh.defined()) dh = dh * g;
    if (dw.defined()) dw = dw * g;
    // One entry per forward argument; the non-tensor ones get none.
    return {dh, dw, {}, {}, {}, {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor fusedLmHeadLoss(const torch::Tensor& hidden, const torch::Tensor& weight,
                              const torch::Tensor& targets, const FusedLmLossOptions& o) {
  const std::string where = "fused LM-head loss";
  if (!hidden.defined() || !weight.defined() || !targets.defined())
    throw InputError(where, "hidden, weight and targets must all be defined");
  if (hidden.dim() < 2 || !hidden.is_floating_point())
    throw InputError(where + ": hidden", "needs a floating [..., d] tensor, got " + std::to_string(hidden.dim()) +
                                              "-D " + std::string(c10::toString(hidden.scalar_type())));
  if (weight.dim() != 2 || weight.size(1) != hidden.size(-1))
    throw InputError(where + ": weight", "needs [vocab, " + std::to_string(hidden.size(-1)) + "], got " +
                                              c10::str(weight.sizes()));
  if (targets.scalar_type() != torch::kLong || targets.numel() * hidden.size(-1) != hidden.numel())
    throw InputError(where + ": targets", "needs int64 targets, one per hidden row (hidden " +
                                               c10::str(hidden.sizes()) + ", targets " + c10::str(targets.sizes()) +
                                               " " + std::string(c10::toString(targets.scalar_type())) + ")");
  if (hidden.device() != weight.device() || hidden.device() != targets.device())
    throw InputError(where, "hidden, weight and targets must be on one device");
  if (o.chunkRows < 1) throw InputError(where + ": chunk rows", "must be >= 1");
  // The matmuls in the dtype autocast would give them (as matmul(hidden, W^T) would).
  const auto [amp, ampDtype] = compat::autocastState(hidden.device().type());
  const auto cd = amp ? ampDtype : hidden.scalar_type();
  const bool grad = torch::GradMode::is_enabled();
  return FusedLmHeadLossFunction::apply(hidden, weight, targets, static_cast<int64_t>(cd), o.chunkRows,
                                        o.ignoreIndex, static_cast<int64_t>(o.xent), grad && hidden.requires_grad(),
                                        grad && weight.requires_grad());
}

}  // namespace wb
