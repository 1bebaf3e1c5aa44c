// Weight-only quantization of Gpt2's linear layers: int8 per output channel and int4
// group-wise (groups of 32/64/128 consecutive inputs of one output channel, symmetric
// or asymmetric with a uint8 zero point, two values per byte, fp16 scales); the packed
// form as safetensors with metadata; a dequantizing matmul as the CPU reference.
// Not here: the CUDA kernel (kernels/int4_matmul), activation quantization, GPTQ/AWQ calibration.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/model/gpt2.h"

namespace wb {

struct QuantSpec {
  int bits = 8;            // 8 or 4
  int64_t groupSize = 0;   // int4: 32, 64 or 128 (any divisor of `in`); int8: 0 = whole channel
  bool symmetric = true;   // int4 only; int8 is always symmetric
  std::string describe() const;  // "int8", "int4-g128-sym"
};

// One quantized weight, stored output-channel-major: row j holds output j's inputs.
struct QuantizedWeight {
  std::string name;
  QuantSpec spec;
  int64_t in = 0, out = 0, groupSize = 0;  // groupSize == in for per-channel int8
  bool storedTransposed = false;  // the parameter is [out, in] (the tied wte/lm head)
  torch::Tensor packed;  // int8 [out, in], or uint8 [out, in/2] (low nibble = even input)
  torch::Tensor scales;  // fp16 [out, in/groupSize]
  torch::Tensor zeros;   // uint8 [out, in/groupSize]; undefined when symmetric
  int64_t bytes() const;  // packed + scales + zeros
  double bytesPerParam() const { return static_cast<double>(bytes()) / static_cast<double>(in * out); }
};

// w [in, out] (any float dtype) -> quantized. Every dequantized value lies within half
// a quantization step (its group's scale / 2) of the original.
QuantizedWeight quantizeWeight(const torch::Tensor& w, const QuantSpec& spec, const std::string& name = {});
// -> fp32 [in, out] (or [out, in] when storedTransposed, matching the parameter).
torch::Tensor dequantize(const QuantizedWeight& q);
// y = x W + b with W dequantized group by group; the reference a fused kernel must match
// (fp32 result). For fp16/bf16 x on CUDA, int4 runs the fused kernel instead
// (core/kernels_bridge/int4_matmul_cuda.h) and returns x's dtype.
torch::Tensor dequantMatmul(const torch::Tensor& x, const QuantizedWeight& q, const torch::Tensor& bias = {});

// Quantizes the selected Conv1D weights (prunableModules() suffixes) and optionally the
// LM head (the tied wte when embeddings are tied: then the embeddings see it too).
// Weights whose input dimension the group size does not divide (e.g. c_proj after head
// pruning) stay unquantized and are listed in `skipped` when given, else an InputError.
std::vector<QuantizedWeight> quantizeModel(Gpt2& model, const QuantSpec& spec,
                                           const std::vector<std::string>& modules, bool lmHead,
                                           std::vector<std::string>* skipped = nullptr);
// Overwrites the model's weights with the dequantized values (fp32 evaluation).
void loadDequantized(Gpt2& model, const std::vector<QuantizedWeight>& weights);

// Packed weights as "<param>.qweight", ".scales", ".zeros" plus every other parameter
// unchanged; metadata records format, bits, group size, symmetry and layout.
void savePacked(const std::filesystem::path& path, Gpt2& model, const std::vector<QuantizedWeight>& weights);
// Reads one quantized weight back from a file written by savePacked.
QuantizedWeight loadPackedWeight(const std::filesystem::path& path, const std::string& param);

}  // namespace wb
