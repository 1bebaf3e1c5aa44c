// `quantize`: int8 per-channel or int4 group-wise weight-only quantization of the run's
// model, or an fp16 / bf16 cast. Saves the packed weights (safetensors + metadata) in
// the run directory, then replaces the model's weights by their dequantized values so
// later stages evaluate and benchmark what the quantized model computes. Reports weight
// bytes and the loss / perplexity change and KL against the unquantized model in the
// same compute dtype (a cast is compared with the dtype it casts from: that is its cost).
#include "core/bench/model_compare.h"
#include "core/errors.h"
#include "core/io/atomic_file.h"
#include "core/io/safetensors_torch.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/run/runner.h"
#include "core/stages/stages.h"
#include "core/techniques/quantize.h"

namespace wb {
namespace {

// The quality half of every quantize / cast report: the plotted samples and the same
// numbers in the stage's JSON.
void reportComparison(StageContext& ctx, const ModelComparison& cmp, nlohmann::json& out) {
  const double delta = cmp.otherPerplexity - cmp.basePerplexity;
  ctx.sample("quant/ppl_base", 0, cmp.basePerplexity);
  ctx.sample("quant/ppl_quant", 0, cmp.otherPerplexity);
  ctx.sample("quant/delta_ppl", 0, delta);
  ctx.sample("quant/kl", 0, cmp.kl);
  out["loss_base"] = cmp.baseLoss;
  out["loss_quant"] = cmp.otherLoss;
  out["ppl_base"] = cmp.basePerplexity;
  out["ppl_quant"] = cmp.otherPerplexity;
  out["delta_ppl"] = delta;
  out["kl"] = cmp.kl;
  out["eval_tokens"] = cmp.tokens;
}

class QuantizeStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    RunState& st = ctx.state();
    checkDtypeSupported(st.dtype, st.device);
    const std::string format = ctx.text("format");
    if (format == "fp16" || format == "bf16") return cast(ctx, format);
    Gpt2& model = st.model();
    QuantSpec spec;
    spec.bits = format == "int8" ? 8 : 4;
    spec.groupSize = spec.bits == 8 ? 0 : ctx.integer("group_size");
    spec.symmetric = spec.bits == 8 || ctx.flag("symmetric");
    const auto modules = ctx.spec().params.at("modules").get<std::vector<std::string>>();

    // The baseline in the run's compute dtype, taken before the weights change.
    Gpt2 base = copyModel(model, st.dtype, st.device);
    std::vector<std::string> skipped;
    const auto weights = quantizeModel(model, spec, modules, ctx.flag("lm_head"), &skipped);
    for (const auto& name : skipped)
      ctx.log(name + " kept in " + dtypeName(st.dtype) + ": its input dimension is not a multiple of " +
                  std::to_string(spec.groupSize),
              LogLevel::Warning);
    if (weights.empty()) throw InputError("/stages/" + std::to_string(ctx.index()), "no weight could be quantized");
    int64_t packedBytes = 0, originalBytes = 0, quantParams = 0;
    for (const auto& q : weights) {
      packedBytes += q.bytes();
      quantParams += q.in * q.out;
    }
    originalBytes = quantParams * static_cast<int64_t>(c10::elementSize(st.dtype));
    const auto dir = ctx.runDir() / "quantized";
    std::filesystem::create_directories(dir);
    const auto file = dir / (ctx.spec().name + ".safetensors");
    savePacked(file, model, weights);
    loadDequantized(model, weights);
    st.weightsLabel = spec.describe() + " (dequantized " + dtypeName(st.dtype) + ")";

    Gpt2 quant = copyModel(model, st.dtype, st.device);
    const TokenFile& val = st.valTokens();
    const int64_t seqLen = std::min(ctx.profile().data.seqLen, model->config().nPositions);
    const auto cmp = compareModels(base, quant, val.data(), static_cast<int64_t>(val.size()), seqLen,
                                   ctx.integer("batch_size"), ctx.integer("eval_windows"), &ctx.cancel());
    const int64_t allBytes = model->parameterBytes() - originalBytes + packedBytes;

    ctx.sample("quant/weight_bytes_packed", 0, static_cast<double>(packedBytes));
    ctx.sample("quant/weight_bytes_original", 0, static_cast<double>(originalBytes));
    ctx.sample("quant/bytes_per_param", 0, static_cast<double>(packedBytes) / static_cast<double>(quantParams));
    ctx.sample("quant/model_bytes", 0, static_cast<double>(allBytes));
    ctx.log(spec.describe() + ": " + std::to_string(weights.size()) + " weights, " + std::to_string(packedBytes) +
            " packed bytes (" + std::to_string(static_cast<double>(packedBytes) / static_cast<double>(quantParams)) +
            " B/param) vs " + std::to_string(originalBytes) + "; perplexity " + std::to_string(cmp.basePerplexity) +
            " -> " + std::to_string(cmp.otherPerplexity) + " (Δ " +
            std::to_string(cmp.otherPerplexity - cmp.basePerplexity) + "), KL " + std::to_string(cmp.kl) +
            " nats/token over " + std::to_string(cmp.tokens) + " tokens, both in " + dtypeName(st.dtype));
    nlohmann::json out{{"scheme", spec.describe()},
                       {"params", ctx.spec().params},
                       {"packed_file", file.string()},
                       {"quantized_parameters", quantParams},
                       {"skipped", skipped},
                       {"weight_bytes_packed", packedBytes},
                       {"weight_bytes_original", originalBytes},
                       {"model_bytes", allBytes},
                       {"compute_dtype", dtypeName(st.dtype)}};
    reportComparison(ctx, cmp, out);
    writeFileAtomic(dir / (ctx.spec().name + ".json"), out.dump(2));
  }

 private:
  // Rounds the fp32 master weights through the 16-bit dtype and makes it the run's
  // compute dtype, so later stages (quantize, benchmark) run and compare in it.
  static void cast(StageContext& ctx, const std::string& format) {
    RunState& st = ctx.state();
    const torch::Dtype target = parseDtype(format, "/stages/" + std::to_string(ctx.index()) + "/format");
    try {
      checkDtypeSupported(target, st.device);
    } catch (const InputError& e) {
      // Keep the message, not checkDtypeSupported's "/device/dtype: " prefix.
      const std::string message = std::string(e.what()).substr(e.where().size() + 2);
      throw InputError("/stages/" + std::to_string(ctx.index()) + "/format", message,
                       "this device cannot run the model in " + format + "; use int8 / int4 or another device");
    }
    Gpt2& model = st.model();
    const torch::Dtype from = st.dtype;
    Gpt2 base = copyModel(model, from, st.device);
    const int64_t bytesBefore = base->parameterBytes();
    {
      torch::NoGradGuard noGrad;
      for (auto& p : model->parameters()) p.copy_(p.to(target).to(p.scalar_type()));
    }
    Gpt2 cast = copyModel(model, target, st.device);
    st.dtype = target;
    st.weightsLabel = format;
    const auto dir = ctx.runDir() / "quantized";
    std::filesystem::create_directories(dir);
    const auto file = dir / (ctx.spec().name + ".safetensors");
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& item : cast->named_parameters()) tensors.emplace_back(item.key(), item.value().detach());
    saveTensors(file, tensors, {{"format", "wb-cast"}, {"dtype", format}, {"config", model->config().toJson().dump()}});

    const TokenFile& val = st.valTokens();
    const int64_t seqLen = std::min(ctx.profile().data.seqLen, model->config().nPositions);
    const auto cmp = compareModels(base, cast, val.data(), static_cast<int64_t>(val.size()), seqLen,
                                   ctx.integer("batch_size"), ctx.integer("eval_windows"), &ctx.cancel());
    const int64_t bytesAfter = cast->parameterBytes();
    ctx.sample("quant/model_bytes", 0, static_cast<double>(bytesAfter));
    ctx.log(dtypeName(from) + " -> " + format + ": " + std::to_string(bytesBefore) + " -> " +
            std::to_string(bytesAfter) + " weight bytes; perplexity " + std::to_string(cmp.basePerplexity) + " -> " +
            std::to_string(cmp.otherPerplexity) + ", KL " + std::to_string(cmp.kl) +
            " nats/token; later stages compute in " + format);
    nlohmann::json out{{"scheme", format},          {"params", ctx.spec().params},
                       {"file", file.string()},     {"model_bytes_before", bytesBefore},
                       {"model_bytes", bytesAfter}, {"compute_dtype_before", dtypeName(from)},
                       {"compute_dtype", format}};
    reportComparison(ctx, cmp, out);
    writeFileAtomic(dir / (ctx.spec().name + ".json"), out.dump(2));
  }
};

}  // namespace

StageType quantizeStageType() {
  SectionSpec s{
      "quantize",
      "Weight-only int8 / int4 quantization (later stages see the dequantized weights) or an fp16 / bf16 cast",
      {{"format", FieldKind::String, "int8",
        "int8 (per output channel), int4 (group-wise), or fp16 / bf16 (cast every weight; later stages compute in it)",
        {}, {}, {"int8", "int4", "fp16", "bf16"}},
       {"group_size", FieldKind::Int, 128, "int4: inputs per group (32, 64, 128)", 2, 4096},
       {"symmetric", FieldKind::Bool, true, "int4: symmetric (else min/max with a zero point)"},
       {"modules", FieldKind::StringList, nlohmann::json::array({"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}),
        "Weights to quantize", {}, {}, {"c_attn", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}},
       {"lm_head", FieldKind::Bool, false, "Quantize the LM head too (tied: the embeddings as well)"},
       {"eval_windows", FieldKind::Int, 20, "Validation windows for Δppl / KL (0: all)", 0, 1e9},
       {"batch_size", FieldKind::Int, 8, "Windows per forward pass", 1, 65536}}};
  return {s, [] { return std::make_unique<QuantizeStage>(); }};
}

}  // namespace wb
