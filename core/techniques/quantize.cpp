// int8 / int4 weight-only quantization; see quantize.h.
#include "core/techniques/quantize.h"

#include <cmath>

#include "core/errors.h"
#include "core/io/safetensors_torch.h"
#include "core/kernels_bridge/int4_matmul_cuda.h"
#include "core/techniques/prune.h"

namespace wb {

std::string QuantSpec::describe() const {
  if (bits == 8) return "int8";
  return "int4-g" + std::to_string(groupSize) + (symmetric ? "-sym" : "-asym");
}

int64_t QuantizedWeight::bytes() const {
  int64_t n = packed.numel() * static_cast<int64_t>(packed.element_size()) +
              scales.numel() * static_cast<int64_t>(scales.element_size());
  if (zeros.defined()) n += zeros.numel() * static_cast<int64_t>(zeros.element_size());
  return n;
}

QuantizedWeight quantizeWeight(const torch::Tensor& w, const QuantSpec& spec, const std::string& name) {
  const std::string where = name.empty() ? std::string("quantize") : name;
  if (w.dim() != 2) throw InputError(where, "expected a 2-D weight");
  if (spec.bits != 8 && spec.bits != 4)
    throw InputError(where, "bits must be 8 or 4, got " + std::to_string(spec.bits));
  torch::NoGradGuard noGrad;
  QuantizedWeight q;
  q.name = name;
  q.spec = spec;
  q.in = w.size(0);
  q.out = w.size(1);
  q.groupSize = spec.bits == 8 || spec.groupSize <= 0 ? q.in : spec.groupSize;
  if (spec.bits == 8 && !spec.symmetric) throw InputError(where, "int8 is symmetric per channel only");
  if (q.in % q.groupSize != 0 || (spec.bits == 4 && q.in % 2 != 0))
    throw InputError(where, "input dimension " + std::to_string(q.in) + " is not a multiple of group size " +
                                std::to_string(q.groupSize));
  const int64_t groups = q.in / q.groupSize;
  auto g = w.detach().to(torch::kCPU, torch::kFloat32).t().reshape({q.out, groups, q.groupSize});
  // Scales are stored in fp16; rounding one up by a ulp keeps every value inside the
  // representable range, so clamping never costs more than half a step.
  auto toHalfScale = [](torch::Tensor s) {
    s = torch::where(s > 0, s, torch::ones_like(s));
    return (s * (1.0 + std::ldexp(1.0, -10))).to(torch::kHalf);
  };
  torch::Tensor codes;
  if (spec.symmetric) {
    const double qmax = spec.bits == 8 ? 127.0 : 7.0;
    q.scales = toHalfScale(g.abs().amax(-1) / qmax);
    codes = torch::round(g / q.scales.to(torch::kFloat32).unsqueeze(-1)).clamp(-qmax, qmax);
    if (spec.bits == 4) codes = codes + 8.0;  // stored as 1..15
  } else {
    // The range always contains 0 so the zero point lands inside [0, 15].
    auto lo = g.amin(-1).clamp_max(0.0), hi = g.amax(-1).clamp_min(0.0);
    q.scales = toHalfScale((hi - lo) / 15.0);
    const auto s = q.scales.to(torch::kFloat32);
    q.zeros = torch::round(-lo / s).clamp(0.0, 15.0).to(torch::kUInt8);
    codes = (torch::round(g / s.unsqueeze(-1)) + q.zeros.to(torch::kFloat32).unsqueeze(-1)).clamp(0.0, 15.0);
  }
  codes = codes.reshape({q.out, q.in});
  if (spec.bits == 8) {
    q.packed = codes.to(torch::kInt8).contiguous();
  } else {
    auto u = codes.to(torch::kUInt8);
    auto lowNibble = u.slice(1, 0, q.in, 2), highNibble = u.slice(1, 1, q.in, 2);
    q.packed = torch::bitwise_or(lowNibble, torch::bitwise_left_shift(highNibble, 4)).contiguous();
  }
  return q;
}

namespace {
// fp32 [out, in].
torch::Tensor dequantizeRows(const QuantizedWeight& q) {
  const int64_t groups = q.in / q.groupSize;
  torch::Tensor codes;
  if (q.spec.bits == 8) {
    codes = q.packed.to(torch::kFloat32);
  } else {
    auto lowNibble = torch::bitwise_and(q.packed, 15);
    auto highNibble = torch::bitwise_right_shift(q.packed, 4);
    codes = torch::stack({lowNibble, highNibble}, -1).reshape({q.out, q.in}).to(torch::kFloat32);
    codes = q.spec.symmetric ? codes - 8.0 : codes;
  }
  auto g = codes.reshape({q.out, groups, q.groupSize});
  if (q.zeros.defined()) g = g - q.zeros.to(torch::kFloat32).unsqueeze(-1);
  return (g * q.scales.to(torch::kFloat32).unsqueeze(-1)).reshape({q.out, q.in});
}
}  // namespace

torch::Tensor dequantize(const QuantizedWeight& q) {
  auto rows = dequantizeRows(q);
  return q.storedTransposed ? rows.contiguous() : rows.t().contiguous();
}

torch::Tensor dequantMatmul(const torch::Tensor& x, const QuantizedWeight& q, const torch::Tensor& bias) {
  if (x.size(-1) != q.in)
    throw InputError("dequantMatmul", "x has " + std::to_string(x.size(-1)) + " features, weight " +
                                          std::to_string(q.in));
  // On CUDA with fp16/bf16 activations the fused int4 kernel (GEMV for up to 8 rows,
  // GEMM beyond); its result keeps x's dtype.
  const bool kernelGroup = q.groupSize == 32 || q.groupSize == 64 || q.groupSize == 128;
  if (x.is_cuda() && q.spec.bits == 4 && kernelGroup && int4KernelBuilt() &&
      (x.scalar_type() == torch::kHalf || x.scalar_type() == torch::kBFloat16)) {
    const auto dev = x.device();
    return int4MatmulCuda(x, q.packed.to(dev), q.scales.to(dev), q.zeros.defined() ? q.zeros.to(dev) : q.zeros,
                          bias.defined() ? bias.to(dev) : bias, q.groupSize);
  }
  // Group by group: y += x[:, group] @ (codes - zero) * scale, never holding the whole
  // fp32 weight (the shape a fused kernel takes).
  const auto rows = x.reshape({-1, q.in}).to(torch::kFloat32);
  const auto w = dequantizeRows(q).to(rows.device());  // [out, in]
  auto y = torch::zeros({rows.size(0), q.out}, rows.options());
  for (int64_t g0 = 0; g0 < q.in; g0 += q.groupSize)
    y.addmm_(rows.narrow(1, g0, q.groupSize), w.narrow(1, g0, q.groupSize).t());
  if (bias.defined()) y.add_(bias.to(y.device(), torch::kFloat32));
  auto sizes = x.sizes().vec();
  sizes.back() = q.out;
  return y.view(sizes);
}

std::vector<QuantizedWeight> quantizeModel(Gpt2& model, const QuantSpec& spec,
                                           const std::vector<std::string>& modules, bool lmHead,
                                           std::vector<std::string>* skipped) {
  std::vector<QuantizedWeight> out;
  for (const auto& [name, w] : selectWeights(model, modules)) {
    const int64_t group = spec.bits == 8 ? 1 : (spec.groupSize > 0 ? spec.groupSize : 2);
    if (skipped && w.size(0) % group != 0) {
      skipped->push_back(name);
      continue;
    }
    out.push_back(quantizeWeight(w, spec, name));
  }
  if (lmHead) {
    const bool tied = model->config().tieWordEmbeddings;
    const auto& w = tied ? model->transformer->wte->weight : model->lmHeadWeight;  // [vocab, E]
    auto q = quantizeWeight(w.t(), spec, tied ? "transformer.wte.weight" : "lm_head.weight");
    q.storedTransposed = true;
    out.push_back(std::move(q));
  }
  return out;
}

void loadDequantized(Gpt2& model, const std::vector<QuantizedWeight>& weights) {
  torch::NoGradGuard noGrad;
  auto params = model->named_parameters();
  for (const auto& q : weights) {
    auto* p = params.find(q.name);
    if (!p) throw InputError("quantize", "model has no parameter " + q.name);
    p->copy_(dequantize(q));
  }
}

void savePacked(const std::filesystem::path& path, Gpt2& model, const std::vector<QuantizedWeight>& weights) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::map<std::string, const QuantizedWeight*> byName;
  for (const auto& q : weights) byName[q.name] = &q;
  for (const auto& item : model->named_parameters()) {
    auto it = byName.find(item.key());
    if (it == byName.end()) {
      tensors.emplace_back(item.key(), item.value().detach());
      continue;
    }
    const QuantizedWeight& q = *it->second;
    tensors.emplace_back(q.name + ".qweight", q.packed);
    tensors.emplace_back(q.name + ".scales", q.scales);
    if (q.zeros.defined()) tensors.emplace_back(q.name + ".zeros", q.zeros);
  }
  const QuantSpec spec = weights.empty() ? QuantSpec{} : weights.front().spec;
  std::string transposed;
  for (const auto& q : weights)
    if (q.storedTransposed) transposed += (transposed.empty() ? "" : ",") + q.name;
  saveTensors(path, tensors,
              {{"format", "wb-weight-only-quant"},
               {"scheme", spec.describe()},
               {"bits", std::to_string(spec.bits)},
               {"group_size", std::to_string(weights.empty() ? 0 : weights.front().groupSize)},
               {"symmetric", spec.symmetric ? "true" : "false"},
               {"layout", "qweight [out, in] output-channel-major; int4: two per byte, low nibble = even "
                          "input, symmetric codes offset by 8; scales fp16 [out, in/group]; zeros uint8"},
               {"transposed_params", transposed},
               {"config", model->config().toJson().dump()}});
}

QuantizedWeight loadPackedWeight(const std::filesystem::path& path, const std::string& param) {
  const auto file = SafetensorsFile::open(path);
  const auto& meta = file.metadata();
  auto get = [&](const std::string& key) {
    auto it = meta.find(key);
    if (it == meta.end()) throw InputError(path.string(), "metadata lacks \"" + key + "\"", "not written by savePacked");
    return it->second;
  };
  QuantizedWeight q;
  q.name = param;
  q.spec.bits = std::stoi(get("bits"));
  q.spec.symmetric = get("symmetric") == "true";
  q.packed = loadTensor(file, param + ".qweight");
  q.scales = loadTensor(file, param + ".scales");
  if (file.contains(param + ".zeros")) q.zeros = loadTensor(file, param + ".zeros");
  q.out = q.packed.size(0);
  q.in = q.spec.bits == 8 ? q.packed.size(1) : 2 * q.packed.size(1);
  q.groupSize = q.in / q.scales.size(1);
  q.spec.groupSize = q.spec.bits == 8 ? 0 : q.groupSize;
  const std::string t = get("transposed_params");
  q.storedTransposed = ("," + t + ",").find("," + param + ",") != std::string::npos;
  return q;
}

}  // namespace wb
