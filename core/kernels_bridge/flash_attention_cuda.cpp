// Flash attention wrapper; see flash_attention_cuda.h.
#include "core/kernels_bridge/flash_attention_cuda.h"

#include "core/errors.h"

#ifdef WB_HAVE_KERNELS
#include "kernels/flash_attention/flash_attention.h"
#endif

namespace wb {

namespace {
constexpr const char* kFlashWhere = "flash attention (CUDA)";
constexpr const char* kNoKernels = "built without CUDA kernels";
constexpr const char* kNoKernelsHint = "build against CUDA LibTorch with nvcc (cmake --preset cuda)";
}  // namespace

bool flashKernelSupports(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                         std::string* why) {
  auto no = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  if (!flashKernelBuilt()) return no(kNoKernels);
  if (!q.defined() || !k.defined() || !v.defined()) return no("an input is undefined");
  if (!q.is_cuda() || k.device() != q.device() || v.device() != q.device())
    return no("q, k and v must be on one CUDA device");
  const auto dt = q.scalar_type();
  if (dt != torch::kHalf && dt != torch::kBFloat16) return no("dtype must be float16 or bfloat16");
  if (k.scalar_type() != dt || v.scalar_type() != dt) return no("q, k and v must share a dtype");
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return no("q, k, v must be [B, H, T, D]");
  if (k.sizes() != v.sizes()) return no("k and v must have the same shape");
  if (k.size(0) != q.size(0) || k.size(1) != q.size(1) || k.size(3) != q.size(3))
    return no("q and k differ in batch, heads or head dim");
  if (q.size(3) != 64 && q.size(3) != 128) return no("head dim must be 64 or 128");
  if (causal && k.size(2) < q.size(2)) return no("causal attention needs Tk >= Tq");
  if (q.size(2) > 0 && k.size(2) == 0) return no("no keys");
  if (q.size(0) * q.size(1) > 65535) return no("batch * heads exceeds 65535");
  return true;
}

#ifdef WB_HAVE_KERNELS

bool flashKernelBuilt() { return true; }
int flashForwardVariants() { return wbFlashAttnForwardVariants(); }
int flashBackwardVariants() { return wbFlashAttnBackwardVariants(); }

namespace {

// The kernel takes any batch/head/row strides with a unit last stride, 16-byte
// aligned rows: anything else is copied once into [B, H, T, D] contiguous.
torch::Tensor kernelReady(const torch::Tensor& t) {
  const bool ok = t.stride(3) == 1 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 && t.stride(2) % 8 == 0 &&
                  reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  return ok ? t : t.clone(at::MemoryFormat::Contiguous);
}

void strides(const torch::Tensor& t, int64_t (&s)[3]) {
  s[0] = t.stride(0);
  s[1] = t.stride(1);
  s[2] = t.stride(2);
}

// [B, H, T, D] view of fresh [B, T, H, D] storage: what GPT-2's merge of heads reads
// without a copy.
torch::Tensor emptyBthd(const torch::Tensor& like, int64_t t) {
  return torch::empty({like.size(0), t, like.size(1), like.size(3)}, like.options()).transpose(1, 2);
}

void check(WbStatus s) {
  if (s != WB_STATUS_OK)
    throw RunError(kFlashWhere, wbKernelsLastError(),
                   s == WB_STATUS_UNSUPPORTED ? "use the math or sdpa backend for this shape" : "");
}

}  // namespace

FlashForwardResult flashAttentionForward(const torch::Tensor& qIn, const torch::Tensor& kIn, const torch::Tensor& vIn,
                                         double scale, bool causal, int variant) {
  std::string why;
  if (!flashKernelSupports(qIn, kIn, vIn, causal, &why)) throw InputError(kFlashWhere, why);
  compat::CudaDeviceGuard guard(qIn.device());
  const auto q = kernelReady(qIn), k = kernelReady(kIn), v = kernelReady(vIn);
  FlashForwardResult r;
  r.out = emptyBthd(q, q.size(2));
  r.lse = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
  WbFlashFwdParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = r.out.data_ptr();
  p.lse = r.lse.data_ptr<float>();
  strides(q, p.qStride);
  strides(k, p.kStride);
  strides(v, p.vStride);
  strides(r.out, p.oStride);
  p.batch = static_cast<int>(q.size(0));
  p.heads = static_cast<int>(q.size(1));
  p.seqlenQ = static_cast<int>(q.size(2));
  p.seqlenK = static_cast<int>(k.size(2));
  p.headDim = static_cast<int>(q.size(3));
  p.scale = static_cast<float>(scale);
  p.causal = causal ? 1 : 0;
  p.dtype = q.scalar_type() == torch::kBFloat16 ? WB_DTYPE_BF16 : WB_DTYPE_F16;
  p.variant = variant;
  check(wbFlashAttnForward(&p, compat::currentCudaStream(q.device())));
  return r;
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> flashAttentionBackward(
    const torch::Tensor& doutIn, const torch::Tensor& qIn, const torch::Tensor& kIn, const torch::Tensor& vIn,
    const torch::Tensor& outIn, const torch::Tensor& lse, double scale, bool causal, int variant) {
  std::string why;
  if (!flashKernelSupports(qIn, kIn, vIn, causal, &why)) throw InputError(kFlashWhere, why);
  if (doutIn.sizes() != qIn.sizes() || outIn.sizes() != qIn.sizes() || doutIn.scalar_type() != qIn.scalar_type() ||
      outIn.scalar_type() != qIn.scalar_type())
    throw InputError(kFlashWhere, "dout and out must match q in shape and dtype");
  if (lse.scalar_type() != torch::kFloat32 || !lse.is_contiguous() || lse.dim() != 3 || lse.size(0) != qIn.size(0) ||
      lse.size(1) != qIn.size(1) || lse.size(2) != qIn.size(2))
    throw InputError(kFlashWhere, "lse must be contiguous fp32 [B, H, Tq] from the forward");
  compat::CudaDeviceGuard guard(qIn.device());
  const auto q = kernelReady(qIn), k = kernelReady(kIn), v = kernelReady(vIn);
  const auto out = kernelReady(outIn), dout = kernelReady(doutIn);
  auto dq = emptyBthd(q, q.size(2)), dk = emptyBthd(k, k.size(2)), dv = emptyBthd(v, v.size(2));
  const int b = static_cast<int>(q.size(0)), h = static_cast<int>(q.size(1));
  const int tq = static_cast<int>(q.size(2)), d = static_cast<int>(q.size(3));
  const auto wsBytes = static_cast<int64_t>(wbFlashAttnBackwardWorkspace(b, h, tq, d));
  auto workspace = torch::empty({wsBytes}, q.options().dtype(torch::kUInt8));
  WbFlashBwdParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = out.data_ptr();
  p.dout = dout.data_ptr();
  p.lse = lse.data_ptr<float>();
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
  p.workspace = workspace.data_ptr();
  strides(q, p.qStride);
  strides(k, p.kStride);
  strides(v, p.vStride);
  strides(out, p.oStride);
  strides(dout, p.doStride);
  strides(dq, p.dqStride);
  strides(dk, p.dkStride);
  strides(dv, p.dvStride);
  p.batch = b;
  p.heads = h;
  p.seqlenQ = tq;
  p.seqlenK = static_cast<int>(k.size(2));
  p.headDim = d;
  p.scale = static_cast<float>(scale);
  p.causal = causal ? 1 : 0;
  p.dtype = q.scalar_type() == torch::kBFloat16 ? WB_DTYPE_BF16 : WB_DTYPE_F16;
  p.variant = variant;
  check(wbFlashAttnBackward(&p, compat::currentCudaStream(q.device())));
  return {dq, dk, dv};
}

namespace {

class FlashAttentionFunction : public torch::autograd::Function<FlashAttentionFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale, bool causal) {
    auto r = flashAttentionForward(q, k, v, scale, causal);
    ctx->save_for_backward({q, k, v, r.out, r.lse});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["causal"] = causal;
    return r.out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [dq, dk, dv] = flashAttentionBackward(grads[0], saved[0], saved[1], saved[2], saved[3], saved[4],
                                               ctx->saved_data["scale"].toDouble(),
                                               ctx->saved_data["causal"].toBool());
    return {dq, dk, dv, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor flashAttentionCuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                                 bool causal) {
  return FlashAttentionFunction::apply(q, k, v, scale, causal);
}

#else  // no kernels in this build

bool flashKernelBuilt() { return false; }
int flashForwardVariants() { return 0; }
int flashBackwardVariants() { return 0; }

FlashForwardResult flashAttentionForward(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, double, bool,
                                         int) {
  throw RunError(kFlashWhere, kNoKernels, kNoKernelsHint);
}
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> flashAttentionBackward(const torch::Tensor&,
                                                                               const torch::Tensor&,
                                                                               const torch::Tensor&,
                                                                               const torch::Tensor&,
                                                                               const torch::Tensor&,
                                                                               const torch::Tensor&, double, bool, int) {
  throw RunError(kFlashWhere, kNoKernels, kNoKernelsHint);
}
torch::Tensor flashAttentionCuda(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, double, bool) {
  throw RunError(kFlashWhere, kNoKernels, kNoKernelsHint);
}

#endif

}  // namespace wb
