// int4 matmul wrapper; see int4_matmul_cuda.h.
#include "core/kernels_bridge/int4_matmul_cuda.h"

#include "core/errors.h"

#ifdef WB_HAVE_KERNELS
#include "kernels/int4_matmul/int4_matmul.h"
#endif

namespace wb {

namespace {
constexpr const char* kInt4Where = "int4 matmul (CUDA)";
}

#ifdef WB_HAVE_KERNELS

bool int4KernelBuilt() { return true; }

torch::Tensor int4MatmulCuda(const torch::Tensor& xIn, const torch::Tensor& packed, const torch::Tensor& scales,
                             const torch::Tensor& zeros, const torch::Tensor& bias, int64_t groupSize,
                             Int4Kernel kernel) {
  if (!xIn.is_cuda()) throw InputError(kInt4Where, "x must be on a CUDA device");
  const auto dt = xIn.scalar_type();
  if (dt != torch::kHalf && dt != torch::kBFloat16) throw InputError(kInt4Where, "x must be float16 or bfloat16");
  const auto dev = xIn.device();
  auto onDevice = [&](const torch::Tensor& t, const char* name) {
    if (t.device() != dev) throw InputError(kInt4Where, std::string(name) + " is not on x's device");
  };
  onDevice(packed, "qweight");
  onDevice(scales, "scales");
  if (packed.scalar_type() != torch::kUInt8 || packed.dim() != 2 || !packed.is_contiguous())
    throw InputError(kInt4Where, "qweight must be contiguous uint8 [N, K/2]");
  const int64_t n = packed.size(0), k = 2 * packed.size(1);
  if (xIn.size(-1) != k)
    throw InputError(kInt4Where, "x has " + std::to_string(xIn.size(-1)) + " features, the weight " + std::to_string(k));
  if (groupSize <= 0 || k % groupSize != 0) throw InputError(kInt4Where, "group size must divide K");
  if (scales.scalar_type() != torch::kHalf || !scales.is_contiguous() || scales.dim() != 2 || scales.size(0) != n ||
      scales.size(1) != k / groupSize)
    throw InputError(kInt4Where, "scales must be contiguous fp16 [N, K/group]");
  if (zeros.defined()) {
    onDevice(zeros, "zeros");
    if (zeros.scalar_type() != torch::kUInt8 || !zeros.is_contiguous() || zeros.sizes() != scales.sizes())
      throw InputError(kInt4Where, "zeros must be contiguous uint8 [N, K/group]");
  }
  torch::Tensor b;
  if (bias.defined()) {
    onDevice(bias, "bias");
    if (bias.numel() != n) throw InputError(kInt4Where, "bias must have N elements");
    b = bias.to(dt).contiguous();
  }
  compat::CudaDeviceGuard guard(dev);
  auto x = xIn.reshape({-1, k});
  if (x.stride(1) != 1 || x.stride(0) % 8 != 0 || reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 != 0)
    x = x.clone(at::MemoryFormat::Contiguous);
  auto y = torch::empty({x.size(0), n}, x.options());
  WbInt4MatmulParams p{};
  p.x = x.data_ptr();
  p.qweight = packed.data_ptr<uint8_t>();
  p.scales = scales.data_ptr();
  p.zeros = zeros.defined() ? zeros.data_ptr<uint8_t>() : nullptr;
  p.bias = b.defined() ? b.data_ptr() : nullptr;
  p.y = y.data_ptr();
  p.xStride = x.stride(0);
  p.yStride = y.stride(0);
  p.m = static_cast<int>(x.size(0));
  p.n = static_cast<int>(n);
  p.k = static_cast<int>(k);
  p.groupSize = static_cast<int>(groupSize);
  p.dtype = dt == torch::kBFloat16 ? WB_DTYPE_BF16 : WB_DTYPE_F16;
  const auto stream = compat::currentCudaStream(dev);
  const WbStatus s = kernel == Int4Kernel::Gemv   ? wbInt4Gemv(&p, stream)
                     : kernel == Int4Kernel::Gemm ? wbInt4Gemm(&p, stream)
                                                  : wbInt4Matmul(&p, stream);
  if (s != WB_STATUS_OK) throw RunError(kInt4Where, wbKernelsLastError());
  auto sizes = xIn.sizes().vec();
  sizes.back() = n;
  return y.view(sizes);
}

#else

bool int4KernelBuilt() { return false; }

torch::Tensor int4MatmulCuda(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                             const torch::Tensor&, int64_t, Int4Kernel) {
  throw RunError(kInt4Where, "built without CUDA kernels", "build against CUDA LibTorch with nvcc (cmake --preset cuda)");
}

#endif

}  // namespace wb
