// Benchmark weight formats; see weight_formats.h.
#include "core/bench/weight_formats.h"

#include "core/errors.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/techniques/prune.h"
#include "core/techniques/quantized_linear.h"

namespace wb {

const std::vector<std::string>& benchWeightFormats() {
  static const std::vector<std::string> names{"current",      "fp32",         "fp16",          "bf16",
                                              "int8",         "int4-g32",     "int4-g64",      "int4-g128",
                                              "int4-g32-asym", "int4-g64-asym", "int4-g128-asym"};
  return names;
}

WeightVariant makeWeightVariant(Gpt2& model, const std::string& format, torch::Dtype runDtype,
                                const torch::Device& device, const std::string& currentLabel) {
  const std::string where = "benchmark weights \"" + format + "\"";
  if (format == "current") return {copyModel(model, runDtype, device), currentLabel};
  if (format == "fp32" || format == "fp16" || format == "bf16") {
    const auto dtype = format == "fp32" ? torch::kFloat32 : format == "fp16" ? torch::kFloat16 : torch::kBFloat16;
    try {
      checkDtypeSupported(dtype, device);
    } catch (const InputError& e) {
      // Keep the message, not checkDtypeSupported's "/device/dtype: " prefix.
      const std::string message = std::string(e.what()).substr(e.where().size() + 2);
      throw InputError(where, message, "drop " + format + " from the weight formats on this device");
    }
    return {copyModel(model, dtype, device), format};
  }
  QuantSpec spec;
  if (format == "int8") {
    spec.bits = 8;
  } else if (format.starts_with("int4-g")) {
    spec.bits = 4;
    const auto rest = format.substr(6);
    spec.symmetric = !rest.ends_with("-asym");
    const auto digits = spec.symmetric ? rest : rest.substr(0, rest.size() - 5);
    if (digits != "32" && digits != "64" && digits != "128") throw InputError(where, "unknown weight format");
    spec.groupSize = std::stoll(digits);
  } else {
    throw InputError(where, "unknown weight format", "one of current, fp32, fp16, bf16, int8, int4-g32|64|128[-asym]");
  }
  Gpt2 copy = copyModel(model, runDtype, device);
  const auto dense = attachQuantizedKernels(copy, spec, prunableModules(), true);
  std::string label = spec.describe() + " (dequant matmul, " + dtypeName(runDtype) + ")";
  if (!dense.empty()) label += " [" + std::to_string(dense.size()) + " dense]";
  return {copy, label};
}

}  // namespace wb
