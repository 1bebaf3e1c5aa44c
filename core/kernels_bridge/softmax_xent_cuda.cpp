// Softmax cross-entropy wrapper; see softmax_xent_cuda.h.
#include "core/kernels_bridge/softmax_xent_cuda.h"

#include <string>

#include "core/errors.h"

#ifdef WB_HAVE_KERNELS
#include "kernels/softmax_xent/softmax_xent.h"
#endif

namespace wb {

namespace {
constexpr const char* kXentWhere = "softmax cross-entropy (CUDA)";
}

#ifdef WB_HAVE_KERNELS

bool softmaxXentKernelBuilt() { return true; }

bool softmaxXentKernelFits(const torch::Tensor& logits) {
  const auto dt = logits.scalar_type();
  return logits.is_cuda() && (dt == torch::kHalf || dt == torch::kBFloat16) && logits.dim() == 2 &&
         logits.is_contiguous() && logits.size(1) % 8 == 0 && logits.size(1) <= WB_SOFTMAX_XENT_MAX_COLUMNS &&
         reinterpret_cast<uintptr_t>(logits.data_ptr()) % 16 == 0;
}

torch::Tensor softmaxXentCuda(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& valid,
                              int64_t vocab, bool writeGrad) {
  if (!softmaxXentKernelFits(logits))
    throw InputError(kXentWhere, "logits must be contiguous fp16/bf16 [rows, ld] on CUDA with ld a multiple of 8 and "
                                 "at most 65536, 16-byte aligned; got " +
                                     std::string(c10::toString(logits.scalar_type())) + " " + c10::str(logits.sizes()) +
                                     " on " + logits.device().str());
  const int64_t rows = logits.size(0), ld = logits.size(1);
  if (vocab < 1 || vocab > ld)
    throw InputError(kXentWhere, "vocab " + std::to_string(vocab) + " must be in [1, " + std::to_string(ld) + "]");
  if (targets.scalar_type() != torch::kLong || targets.dim() != 1 || targets.size(0) != rows ||
      targets.device() != logits.device())
    throw InputError(kXentWhere, "targets must be int64 [" + std::to_string(rows) + "] on the logits' device");
  if (valid.scalar_type() != torch::kFloat32 || valid.dim() != 1 || valid.size(0) != rows ||
      valid.device() != logits.device())
    throw InputError(kXentWhere, "valid must be fp32 [" + std::to_string(rows) + "] on the logits' device");
  compat::CudaDeviceGuard guard(logits.device());
  const auto t = targets.contiguous();
  const auto v = valid.contiguous();
  auto rowLoss = torch::empty({rows}, v.options());
  WbSoftmaxXentParams p{};
  p.logits = logits.data_ptr();
  p.targets = t.data_ptr<int64_t>();
  p.valid = v.data_ptr<float>();
  p.rowLoss = rowLoss.data_ptr<float>();
  p.rows = static_cast<int>(rows);
  p.vocab = static_cast<int>(vocab);
  p.ld = static_cast<int>(ld);
  p.writeGrad = writeGrad ? 1 : 0;
  p.dtype = logits.scalar_type() == torch::kBFloat16 ? WB_DTYPE_BF16 : WB_DTYPE_F16;
  if (wbSoftmaxXent(&p, compat::currentCudaStream(logits.device())) != WB_STATUS_OK)
    throw RunError(kXentWhere, wbKernelsLastError());
  return rowLoss;
}

#else

bool softmaxXentKernelBuilt() { return false; }

bool softmaxXentKernelFits(const torch::Tensor&) { return false; }

torch::Tensor softmaxXentCuda(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, int64_t, bool) {
  throw RunError(kXentWhere, "built without CUDA kernels", "build against CUDA LibTorch with nvcc (cmake --preset cuda)");
}

#endif

}  // namespace wb
