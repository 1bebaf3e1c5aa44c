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
