// LayerNorm kernel wrapper; see layernorm_cuda.h.
#include "core/kernels_bridge/layernorm_cuda.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/errors.h"

#ifdef WB_HAVE_KERNELS
#include "kernels/layernorm/layernorm.h"
#endif

namespace wb {

namespace {
constexpr const char* kLnWhere = "layer norm (CUDA)";
}

#ifdef WB_HAVE_KERNELS

namespace {

bool aligned16(const torch::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

std::string describe(const torch::Tensor& t) {
  return std::string(c10::toString(t.scalar_type())) + " " + c10::str(t.sizes()) + " on " + t.device().str();
}

// A per-column fp32 vector (weight or bias) the kernel can read as float4s.
void checkColumnVector(const torch::Tensor& v, const char* name, int64_t cols, const torch::Device& device) {
  if (!v.defined() || v.scalar_type() != torch::kFloat32 || v.dim() != 1 || v.size(0) != cols ||
      v.device() != device || !v.is_contiguous() || !aligned16(v))
    throw InputError(std::string(kLnWhere) + ": " + name,
                     "must be contiguous fp32 [" + std::to_string(cols) + "] on " + device.str() +
                         ", 16-byte aligned; got " + (v.defined() ? describe(v) : std::string("undefined")));
}

// Saved per-row statistics from the forward.
void checkRowVector(const torch::Tensor& v, const char* name, int64_t rows, const torch::Device& device) {
  if (!v.defined() || v.scalar_type() != torch::kFloat32 || v.numel() != rows || v.device() != device ||
      !v.is_contiguous())
    throw InputError(std::string(kLnWhere) + ": " + name,
                     "must be contiguous fp32 with " + std::to_string(rows) + " elements on " + device.str() +
                         "; got " + (v.defined() ? describe(v) : std::string("undefined")));
}

WbDtype wbDtype(torch::ScalarType t) { return t == torch::kBFloat16 ? WB_DTYPE_BF16 : WB_DTYPE_F16; }

// x alone: fp32 on CUDA, contiguous, aligned, cols a multiple of 128 up to 4096.
bool inputFits(const torch::Tensor& x) {
  if (!x.defined() || !x.is_cuda() || x.scalar_type() != torch::kFloat32 || x.dim() < 1) return false;
  const int64_t cols = x.size(-1);
  return cols > 0 && cols % WB_LAYERNORM_COLUMN_MULTIPLE == 0 && cols <= WB_LAYERNORM_MAX_COLUMNS &&
         x.is_contiguous() && aligned16(x) && x.numel() / cols <= INT32_MAX;
}

void checkInput(const torch::Tensor& x) {
  if (!inputFits(x))
    throw InputError(std::string(kLnWhere) + ": x",
                     "must be contiguous fp32 on CUDA, 16-byte aligned, with a last dimension that is a multiple of "
                     "128 and at most 4096; got " +
                         (x.defined() ? describe(x) : std::string("undefined")));
}

}  // namespace

bool layerNormKernelBuilt() { return true; }

bool layerNormKernelFits(const torch::Tensor& x, const torch::Tensor& weight) {
  return inputFits(x) && weight.defined() && weight.scalar_type() == torch::kFloat32 && weight.dim() == 1 &&
         weight.size(0) == x.size(-1) && weight.device() == x.device() && weight.is_contiguous() && aligned16(weight);
}

LayerNormCudaForward layerNormForwardCuda(const torch::Tensor& x, const torch::Tensor& weight,
                                          const torch::Tensor& bias, double eps, torch::ScalarType outDtype) {
  checkInput(x);
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  checkColumnVector(weight, "weight", cols, x.device());
  checkColumnVector(bias, "bias", cols, x.device());
  if (outDtype != torch::kBFloat16 && outDtype != torch::kHalf)
    throw InputError(std::string(kLnWhere) + ": output dtype",
                     "must be fp16 or bf16, got " + std::string(c10::toString(outDtype)));
  if (!(eps >= 0.0)) throw InputError(std::string(kLnWhere) + ": eps", "must be >= 0, got " + std::to_string(eps));
  compat::CudaDeviceGuard guard(x.device());
  LayerNormCudaForward r;
  r.y = torch::empty(x.sizes(), x.options().dtype(outDtype));
  r.mean = torch::empty({rows}, x.options());
  r.rstd = torch::empty({rows}, x.options());
  WbLayerNormFwdParams p{};
  p.x = x.data_ptr<float>();
  p.gamma = weight.data_ptr<float>();
  p.beta = bias.data_ptr<float>();
  p.y = r.y.data_ptr();
  p.mean = r.mean.data_ptr<float>();
  p.rstd = r.rstd.data_ptr<float>();
  p.rows = static_cast<int>(rows);
  p.cols = static_cast<int>(cols);
  p.eps = static_cast<float>(eps);
  p.dtype = wbDtype(outDtype);
  if (wbLayerNormForward(&p, compat::currentCudaStream(x.device())) != WB_STATUS_OK)
    throw RunError(kLnWhere, wbKernelsLastError());
  return r;
}

LayerNormCudaBackward layerNormBackwardCuda(const torch::Tensor& dy, const torch::Tensor& x,
                                            const torch::Tensor& mean, const torch::Tensor& rstd,
                                            const torch::Tensor& weight) {
  checkInput(x);
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  checkColumnVector(weight, "weight", cols, x.device());
  if (!dy.defined() || (dy.scalar_type() != torch::kBFloat16 && dy.scalar_type() != torch::kHalf) ||
      dy.sizes() != x.sizes() || dy.device() != x.device() || !dy.is_contiguous() || !aligned16(dy))
    throw InputError(std::string(kLnWhere) + ": dy",
                     "must be contiguous fp16/bf16 " + c10::str(x.sizes()) + " on " + x.device().str() +
                         ", 16-byte aligned; got " + (dy.defined() ? describe(dy) : std::string("undefined")));
  checkRowVector(mean, "mean", rows, x.device());
  checkRowVector(rstd, "rstd", rows, x.device());
  compat::CudaDeviceGuard guard(x.device());
  const int partialRows = wbLayerNormPartialRows(static_cast<int>(rows), static_cast<int>(cols));
  // One allocation for both partial buffers; each is a whole number of float4 rows.
  auto partials = torch::empty({2, std::max(partialRows, 1), cols}, x.options());
  LayerNormCudaBackward r;
  r.dx = torch::empty(x.sizes(), x.options());
  r.dweight = torch::empty({cols}, x.options());
  r.dbias = torch::empty({cols}, x.options());
  WbLayerNormBwdParams p{};
  p.dy = dy.data_ptr();
  p.x = x.data_ptr<float>();
  p.mean = mean.data_ptr<float>();
  p.rstd = rstd.data_ptr<float>();
  p.gamma = weight.data_ptr<float>();
  p.dx = r.dx.data_ptr<float>();
  p.dgammaPartial = partials[0].data_ptr<float>();
  p.dbetaPartial = partials[1].data_ptr<float>();
  p.dgamma = r.dweight.data_ptr<float>();
  p.dbeta = r.dbias.data_ptr<float>();
  p.rows = static_cast<int>(rows);
  p.cols = static_cast<int>(cols);
  p.dtype = wbDtype(dy.scalar_type());
  if (wbLayerNormBackward(&p, compat::currentCudaStream(x.device())) != WB_STATUS_OK)
    throw RunError(kLnWhere, wbKernelsLastError());
  return r;
}

#else

bool layerNormKernelBuilt() { return false; }

bool layerNormKernelFits(const torch::Tensor&, const torch::Tensor&) { return false; }

LayerNormCudaForward layerNormForwardCuda(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, double,
                                          torch::ScalarType) {
  throw RunError(kLnWhere, "built without CUDA kernels", "build against CUDA LibTorch with nvcc (cmake --preset cuda)");
}

LayerNormCudaBackward layerNormBackwardCuda(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                            const torch::Tensor&, const torch::Tensor&) {
  throw RunError(kLnWhere, "built without CUDA kernels", "build against CUDA LibTorch with nvcc (cmake --preset cuda)");
}

#endif

}  // namespace wb
