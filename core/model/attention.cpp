// Attention backends; see attention.h.
#include "core/model/attention.h"

#include <cmath>
#include <limits>

#include "core/errors.h"
#include "core/kernels_bridge/flash_attention_cuda.h"

namespace wb {

AttentionBackend parseAttentionBackend(const std::string& name, const std::string& where) {
  if (name == "math") return AttentionBackend::Math;
  if (name == "sdpa") {
    if (!compat::kHasSdpa)
      throw InputError(where, "the sdpa backend needs LibTorch >= 2.0 (this build has " +
                                  compat::torchVersion() + ")",
                       "use \"math\" or \"flash\"");
    return AttentionBackend::Sdpa;
  }
  if (name == "flash") return AttentionBackend::Flash;
  throw InputError(where, "unknown attention backend \"" + name + "\" (math, sdpa, flash)");
}

const char* toString(AttentionBackend backend) {
  switch (backend) {
    case AttentionBackend::Math: return "math";
    case AttentionBackend::Sdpa: return "sdpa";
    case AttentionBackend::Flash: return "flash";
  }
  return "math";
}

std::vector<AttentionBackend> availableBackends(const torch::Device&) {
  std::vector<AttentionBackend> out = {AttentionBackend::Math, AttentionBackend::Flash};
  if (compat::kHasSdpa) out.push_back(AttentionBackend::Sdpa);
  return out;
}

namespace {

// Boolean mask [Tq, Tk], true where query i may see key j (j <= past + i).
torch::Tensor causalMask(int64_t tq, int64_t tk, int64_t past, const torch::Device& device) {
  auto qi = torch::arange(tq, torch::TensorOptions().dtype(torch::kLong).device(device)) + past;
  auto kj = torch::arange(tk, torch::TensorOptions().dtype(torch::kLong).device(device));
  return kj.unsqueeze(0) <= qi.unsqueeze(1);
}

}  // namespace

torch::Tensor mathAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const AttentionParams& p, bool training) {
  // Scores and softmax in fp32 even for 16-bit inputs, as transformers does.
  auto scores = torch::matmul(q, k.transpose(-1, -2)).to(torch::kFloat32) * p.scale;
  if (p.causal) {
    const auto mask = causalMask(q.size(-2), k.size(-2), p.pastLength, q.device());
    scores = scores.masked_fill(mask.logical_not(), std::numeric_limits<float>::lowest());
  }
  auto probs = torch::softmax(scores, -1).to(v.scalar_type());
  if (training && p.dropout > 0) probs = torch::dropout(probs, p.dropout, true);
  return torch::matmul(probs, v);
}

torch::Tensor chunkedFlashAttention(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v, const AttentionParams& p,
                                    int64_t block) {
  const int64_t tq = q.size(-2), tk = k.size(-2);
  const auto qf = q.to(torch::kFloat32) * p.scale;
  const auto kf = k.to(torch::kFloat32);
  const auto vf = v.to(torch::kFloat32);
  auto sizes = q.sizes().vec();
  auto rowMax = torch::full({sizes[0], sizes[1], tq, 1}, -std::numeric_limits<float>::infinity(),
                            qf.options());
  auto rowSum = torch::zeros({sizes[0], sizes[1], tq, 1}, qf.options());
  auto acc = torch::zeros_like(qf);
  for (int64_t start = 0; start < tk; start += block) {
    const int64_t len = std::min(block, tk - start);
    // Keys beyond the last query's position are never visible: stop early.
    if (p.causal && start > p.pastLength + tq - 1) break;
    auto s = torch::matmul(qf, kf.narrow(-2, start, len).transpose(-1, -2));
    if (p.causal) {
      auto mask = causalMask(tq, start + len, p.pastLength, q.device()).narrow(1, start, len);
      s = s.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
    }
    const auto blockMax = std::get<0>(s.max(-1, true));
    const auto newMax = torch::maximum(rowMax, blockMax);
    // Rows that have seen no visible key yet keep max -inf; exp(-inf - -inf) is NaN, so
    // shift by 0 there instead.
    const auto safeMax = torch::where(torch::isinf(newMax), torch::zeros_like(newMax), newMax);
    const auto correction = torch::exp(rowMax - safeMax);
    const auto probs = torch::exp(s - safeMax);
    rowSum = rowSum * correction + probs.sum(-1, true);
    acc = acc * correction + torch::matmul(probs, vf.narrow(-2, start, len));
    rowMax = newMax;
  }
  return (acc / rowSum).to(q.scalar_type());
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const AttentionParams& p, AttentionBackend backend, bool training) {
  switch (backend) {
    case AttentionBackend::Math:
      return mathAttention(q, k, v, p, training);
    case AttentionBackend::Flash:
      if (training && p.dropout > 0)
        throw RunError("attention", "the flash backend has no attention dropout",
                       "set attn_pdrop to 0 or use the math backend for training");
      // The project's kernel on CUDA for fp16/bf16 (its causal mask is bottom-right
      // aligned, i.e. offset by pastLength = Tk - Tq); the chunked reference elsewhere.
      if (q.is_cuda() && flashKernelSupports(q, k, v, p.causal)) return flashAttentionCuda(q, k, v, p.scale, p.causal);
      return chunkedFlashAttention(q, k, v, p);
    case AttentionBackend::Sdpa:
#if WB_TORCH_AT_LEAST(2, 0)
    {
      // SDPA's is_causal aligns the mask top-left, which is wrong once a KV cache
      // makes Tk > Tq: pass an explicit mask then.
      const double drop = training ? p.dropout : 0.0;
      if (!p.causal || p.pastLength == 0)
        return at::scaled_dot_product_attention(q, k, v, {}, drop, p.causal, p.scale);
      auto qi = torch::arange(q.size(-2), q.options().dtype(torch::kLong)) + p.pastLength;
      auto kj = torch::arange(k.size(-2), q.options().dtype(torch::kLong));
      return at::scaled_dot_product_attention(q, k, v, kj.unsqueeze(0) <= qi.unsqueeze(1), drop,
                                              false, p.scale);
    }
#else
      throw InputError("attention", "the sdpa backend needs LibTorch >= 2.0");
#endif
  }
  return mathAttention(q, k, v, p, training);
}

}  // namespace wb
