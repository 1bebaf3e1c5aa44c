// Everything that differs between the LibTorch versions we build against (1.13 CPU
// from Debian in CI, 2.x CUDA on GPU machines) is decided here and nowhere else.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#define WB_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||     \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace wb::compat {

// Public scaled_dot_product_attention arrived in 2.0; 1.13 only has a private one.
constexpr bool kHasSdpa = WB_TORCH_AT_LEAST(2, 0);

inline std::string torchVersion() { return TORCH_VERSION; }

inline bool cudaAvailable() { return torch::cuda::is_available(); }

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
