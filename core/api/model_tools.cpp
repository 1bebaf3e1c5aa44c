// Front-end entry points; see model_tools.h.
#include "core/api/model_tools.h"

#include <fstream>

#include "core/bench/evaluator.h"
#include "core/bench/stats.h"
#include "core/bench/stats_json.h"
#include "core/io/hf_checkpoint.h"
#include "core/io/model_catalog.h"
#include "core/io/safetensors_torch.h"
#include "core/io/token_file.h"
#include "core/io/tokenizer.h"
#include "core/model/generate.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"

namespace wb {
namespace {

torch::Device parseDevice(const std::string& text) {
  DeviceSpec spec;
  if (text == "cpu") return pickDevice(spec);
  if (text.rfind("cuda", 0) != 0) throw InputError("--device", "expected cpu or cuda[:N], got " + text);
  spec.type = "cuda";
  if (text.size() > 5) spec.gpus = {std::stoi(text.substr(5))};
  return pickDevice(spec);
}

Gpt2 prepare(const std::string& source, const DeviceChoice& d, torch::Device& device) {
  if (d.threads > 0) torch::set_num_threads(d.threads);
  device = parseDevice(d.device);
  const auto dtype = parseDtype(d.dtype, "--dtype");
  checkDtypeSupported(dtype, device);
  Gpt2 model = loadModelFolder(resolveModelSource(source));
  model->setAttentionBackend(parseAttentionBackend(d.attention, "--attention"));
  model->to(device, dtype);
  model->eval();
  return model;
}

}  // namespace

nlohmann::json EvalReport::toJson() const {
  return {{"loss", loss}, {"perplexity", perplexity}, {"tokens", tokens}, {"windows", windows},
          {"seconds", seconds}};
}

EvalReport evaluateModel(const EvalRequest& r) {
  torch::Device device(torch::kCPU);
  Gpt2 model = prepare(r.model, r.device, device);
  const TokenFile tokens(r.tokens);
  tokens.checkIds(static_cast<int32_t>(model->config().vocabSize));
  EvalOptions o;
  o.seqLen = r.seqLen > 0 ? r.seqLen : model->config().nPositions;
  o.batchSize = r.batchSize;
  o.stride = r.stride;
  o.maxWindows = r.maxWindows;
  const EvalResult e = evaluate(model, tokens.data(), static_cast<int64_t>(tokens.size()), o);
  if (!r.dumpLogits.empty()) {
    torch::NoGradGuard g;
    const int64_t t = std::min<int64_t>(o.seqLen, static_cast<int64_t>(tokens.size()));
    auto ids = torch::empty({1, t}, torch::kLong);
    for (int64_t i = 0; i < t; ++i) ids[0][i] = static_cast<int64_t>(tokens[static_cast<size_t>(i)]);
    const auto logits = model->forward(ids.to(device)).to(torch::kCPU, torch::kFloat32);
    saveTensors(r.dumpLogits, {{"logits", logits}, {"input_ids", ids}});
  }
  EvalReport out;
  out.loss = e.loss;
  out.perplexity = e.perplexity;
  out.seconds = e.seconds;
  out.tokens = e.tokens;
  out.windows = e.windows;
  return out;
}

nlohmann::json GenerateReport::toJson() const {
  return {{"prompt_ids", promptIds},
          {"ids", ids},
          {"text", text},
          {"prefill_s", prefillSeconds},
          {"decode_s_per_token", samplesJson(decodeSeconds)}};
}

GenerateReport generateFromModel(const GenerateRequest& r) {
  torch::Device device(torch::kCPU);
  Gpt2 model = prepare(r.model, r.device, device);
  GenerateReport out;
  std::shared_ptr<const Tokenizer> tok;
  if (!r.promptIds.empty()) {
    out.promptIds = r.promptIds;
  } else {
    tok = Tokenizer::gpt2Default();
    for (int32_t id : tok->encode(r.prompt)) out.promptIds.push_back(id);
  }
  GenerateOptions o;
  o.maxNewTokens = r.maxNewTokens;
  o.temperature = r.temperature;
  o.topK = r.topK;
  o.topP = r.topP;
  o.useKvCache = r.kvCache;
  o.seed = r.seed;
  const GenerateResult g = generate(model, out.promptIds, o);
  out.ids = g.tokens;
  out.prefillSeconds = g.prefillSeconds;
  out.decodeSeconds = g.decodeSeconds;
  if (tok) {
    std::vector<int32_t> ids(g.tokens.begin(), g.tokens.end());
    out.text = tok->decode(ids);
  }
  return out;
}

void initModelFolder(const nlohmann::json& config, uint64_t seed, const std::string& outDir) {
  ModelSpec spec;
  spec.source = "config";
  spec.config = config;
  Gpt2 model = loadModel(spec, seed);
  saveHfCheckpoint(*model, model->config().toJson(), outDir);
}

}  // namespace wb
