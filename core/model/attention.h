// Causal self-attention kernels behind one switch: `math` (the reference:
// softmax(QK^T/sqrt(d)) V with an explicit mask), `sdpa` (LibTorch's
// scaled_dot_product_attention, LibTorch >= 2 only) and `flash` (on the CPU a
// chunked online-softmax that never materialises the T x T matrix; on CUDA with
// fp16/bf16 the project's own kernel, kernels/flash_attention, differentiable through
// core/kernels_bridge). Shapes [B, H, T, D].
#pragma once

#include <string>
#include <vector>

#include "core/torch_compat.h"

namespace wb {

enum class AttentionBackend { Math, Sdpa, Flash };

AttentionBackend parseAttentionBackend(const std::string& name, const std::string& where);
const char* toString(AttentionBackend backend);
// Backends usable in this build on `device`, in preference order for speed.
std::vector<AttentionBackend> availableBackends(const torch::Device& device);

struct AttentionParams {
  double scale = 0.0;      // multiplies QK^T
  double dropout = 0.0;    // on the probabilities, training only
  bool causal = true;
  int64_t pastLength = 0;  // query i sits at absolute position pastLength + i
};

// q [B,H,Tq,D], k and v [B,H,Tk,D] with Tk = pastLength + Tq. Returns [B,H,Tq,D].
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const AttentionParams& params, AttentionBackend backend, bool training);

torch::Tensor mathAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const AttentionParams& params, bool training);
// O(T) memory: processes keys in blocks of `block`, keeping a running max and sum.
torch::Tensor chunkedFlashAttention(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v, const AttentionParams& params,
                                    int64_t block = 128);

}  // namespace wb
