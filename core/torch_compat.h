// Everything that differs between the LibTorch versions we build against (1.13 CPU
// from Debian in CI, 2.x CUDA on GPU machines) is decided here and nowhere else:
// SDPA, autocast's API (per device type since 2.4), fused AdamW, foreach norms.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#include <ATen/autocast_mode.h>

#define WB_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||     \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace wb::compat {

// Public scaled_dot_product_attention arrived in 2.0; 1.13 only has a private one.
constexpr bool kHasSdpa = WB_TORCH_AT_LEAST(2, 0);
// Mixed precision training is supported from 2.4 on (autocast per device type), on
// CUDA only: 1.13's CPU autocast knows bf16 alone and the CI build has no GPU.
constexpr bool kHasAutocast = WB_TORCH_AT_LEAST(2, 4);
// at::_fused_adamw_ (one kernel per parameter list) with CPU and CUDA dispatch.
constexpr bool kHasFusedAdamW = WB_TORCH_AT_LEAST(2, 4);

inline std::string torchVersion() { return TORCH_VERSION; }

inline bool cudaAvailable() { return torch::cuda::is_available(); }

// Turns autocast on for `device` with `dtype` for the guard's lifetime (thread-local,
// as autocast is) and restores the previous state. Only where kHasAutocast.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, at::ScalarType dtype) : device_(device) {
#if WB_TORCH_AT_LEAST(2, 4)
    wasEnabled_ = at::autocast::is_autocast_enabled(device_);
    oldDtype_ = at::autocast::get_autocast_dtype(device_);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, dtype);
    at::autocast::increment_nesting();
#else
    (void)dtype;
    throw std::logic_error("autocast needs LibTorch >= 2.4");
#endif
  }
  ~AutocastGuard() {
#if WB_TORCH_AT_LEAST(2, 4)
    // Leaving the outermost region frees the cached casts of the weights.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, wasEnabled_);
    at::autocast::set_autocast_dtype(device_, oldDtype_);
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool wasEnabled_ = false;
  at::ScalarType oldDtype_ = at::kFloat;
};

// The autocast state of the calling thread for `device` (false/Float where absent),
// so recomputation in backward (activation checkpointing) can restore it.
inline std::pair<bool, at::ScalarType> autocastState(c10::DeviceType device) {
#if WB_TORCH_AT_LEAST(2, 4)
  return {at::autocast::is_autocast_enabled(device), at::autocast::get_autocast_dtype(device)};
#else
  (void)device;
  return {false, at::kFloat};
#endif
}

// One AdamW update of `params` in a single fused kernel (torch.optim.AdamW(fused=True)).
// `steps` are float scalar tensors on the parameters' device, already incremented.
inline void fusedAdamW(std::vector<torch::Tensor> params, std::vector<torch::Tensor> grads,
                       std::vector<torch::Tensor> expAvg, std::vector<torch::Tensor> expAvgSq,
                       std::vector<torch::Tensor> steps, double lr, double beta1, double beta2,
                       double weightDecay, double eps) {
#if WB_TORCH_AT_LEAST(2, 4)
  at::_fused_adamw_(params, grads, expAvg, expAvgSq, {}, steps, lr, beta1, beta2, weightDecay, eps,
                    /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)params, (void)grads, (void)expAvg, (void)expAvgSq, (void)steps, (void)lr, (void)beta1,
      (void)beta2, (void)weightDecay, (void)eps;
  throw std::logic_error("fused AdamW needs LibTorch >= 2.4");
#endif
}

// L2 norm over all `tensors` as a 0-d tensor, without a host synchronisation.
inline torch::Tensor totalNorm(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty()) return torch::zeros({});
#if WB_TORCH_AT_LEAST(2, 0)
  auto norms = at::_foreach_norm(tensors, 2);
  for (auto& n : norms) n = n.to(torch::kFloat32);
  return torch::stack(norms).norm();
#else
  std::vector<torch::Tensor> norms;
  norms.reserve(tensors.size());
  for (const auto& t : tensors) norms.push_back(t.norm().to(torch::kFloat32));
  return torch::stack(norms).norm();
#endif
}

// Multiplies every tensor in place by the 0-d tensor `factor`.
inline void scaleAll(std::vector<torch::Tensor>& tensors, const torch::Tensor& factor) {
  if (tensors.empty()) return;
#if WB_TORCH_AT_LEAST(2, 1)
  at::_foreach_mul_(tensors, factor);
#else
  for (auto& t : tensors) t.mul_(factor);
#endif
}

}  // namespace wb::compat

// CUDA LibTorch only (WB_WITH_CUDA comes from CMake when LibTorch has CUDA): the
// current stream and a device guard for launching the project's own kernels, and
// LibTorch's SDPA flash kernels called directly (benchmarks compare against them).
// CPU LibTorch 1.13 ships some of these headers but no library behind them.
#if defined(WB_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace wb::compat {

inline cudaStream_t currentCudaStream(const torch::Device& device) {
  return c10::cuda::getCurrentCUDAStream(device.index()).stream();
}
using CudaDeviceGuard = c10::cuda::CUDAGuard;

// max_q / max_k are SymInt in 2.x and were int64_t before; accept either.
inline int64_t asInt(int64_t v) { return v; }
template <typename S>
inline int64_t asInt(const S& v) {
  return v.expect_int();
}

#if WB_TORCH_AT_LEAST(2, 1)
constexpr bool kHasSdpaFlash = true;
struct SdpaFlashForward {
  at::Tensor out, lse, cumQ, cumK, seed, offset;
  int64_t maxQ = 0, maxK = 0;
};
// q, k, v [B, H, T, D]; the flash backend only, no dispatcher choice.
inline SdpaFlashForward sdpaFlashForward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                                         double scale) {
  auto r = at::_scaled_dot_product_flash_attention(q, k, v, 0.0, causal, false, scale);
  SdpaFlashForward f;
  f.out = std::get<0>(r);
  f.lse = std::get<1>(r);
  f.cumQ = std::get<2>(r);
  f.cumK = std::get<3>(r);
  f.maxQ = asInt(std::get<4>(r));
  f.maxK = asInt(std::get<5>(r));
  f.seed = std::get<6>(r);
  f.offset = std::get<7>(r);
  return f;
}
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> sdpaFlashBackward(const at::Tensor& dout, const at::Tensor& q,
                                                                        const at::Tensor& k, const at::Tensor& v,
                                                                        const SdpaFlashForward& f, bool causal,
                                                                        double scale) {
  return at::_scaled_dot_product_flash_attention_backward(dout, q, k, v, f.out, f.lse, f.cumQ, f.cumK, f.maxQ, f.maxK,
                                                          0.0, causal, f.seed, f.offset, scale);
}
#else
constexpr bool kHasSdpaFlash = false;
#endif

}  // namespace wb::compat
#else
namespace wb::compat {
constexpr bool kHasSdpaFlash = false;
}
#endif
