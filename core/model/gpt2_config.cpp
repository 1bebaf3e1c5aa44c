// HF GPT-2 config.json reading and writing; see gpt2_config.h.
#include "core/model/gpt2_config.h"

#include <fstream>
#include <set>

#include "core/errors.h"
#include "core/run/profile.h"

namespace wb {
namespace {

using nlohmann::json;

// Inside a profile `where` is a JSON pointer, kept for the GUI's highlighting; for a
// config.json file it is the file's path.
[[noreturn]] void fail(bool pointer, const std::string& where, const std::string& key,
                       const std::string& msg) {
  if (pointer) throw ProfileError({}, where + "/" + key, msg);
  throw InputError(where, (key.empty() ? "" : key + ": ") + msg);
}

}  // namespace

int64_t Gpt2Config::parameterCount() const {
  const int64_t e = nEmbd, f = innerDim();
  const int64_t block = 2 * 2 * e                 // ln_1, ln_2
                        + e * 3 * e + 3 * e        // c_attn
                        + e * e + e                // attn.c_proj
                        + e * f + f + f * e + e;   // mlp
  int64_t total = vocabSize * e + nPositions * e + nLayer * block + 2 * e;
  if (!tieWordEmbeddings) total += vocabSize * e;
  return total;
}

Gpt2Config Gpt2Config::fromJson(const json& j, const std::string& where, bool strict) {
  const bool pointer = strict && !where.empty() && where[0] == '/';
  auto fail = [&](const std::string& w, const std::string& key, const std::string& msg) {
    ::wb::fail(pointer, w, key, msg);
  };
  if (!j.is_object()) fail(where, "", "expected a JSON object");
  Gpt2Config c;
  std::set<std::string> seen;
  auto intKey = [&](std::initializer_list<const char*> names, int64_t& out, int64_t minValue) {
    const char* found = nullptr;
    for (const char* n : names) {
      if (!j.contains(n) || j[n].is_null()) continue;
      if (found) fail(where, n, std::string("conflicts with ") + found);
      found = n;
      seen.insert(n);
      const json& v = j[n];
      if (!v.is_number_integer() || v.get<int64_t>() < minValue)
        fail(where, n, "expected an integer >= " + std::to_string(minValue) + ", got " + v.dump());
      out = v.get<int64_t>();
    }
  };
  auto numKey = [&](const char* n, double& out, double lo, double hi) {
    if (!j.contains(n) || j[n].is_null()) return;
    seen.insert(n);
    const json& v = j[n];
    if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi)
      fail(where, n, "expected a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                         "], got " + v.dump());
    out = v.get<double>();
  };
  auto boolKey = [&](const char* n, bool& out) {
    if (!j.contains(n) || j[n].is_null()) return;
    seen.insert(n);
    if (!j[n].is_boolean()) fail(where, n, "expected a boolean, got " + j[n].dump());
    out = j[n].get<bool>();
  };
  intKey({"vocab_size"}, c.vocabSize, 1);
  intKey({"n_positions", "max_position_embeddings"}, c.nPositions, 1);
  intKey({"n_embd", "hidden_size"}, c.nEmbd, 1);
  intKey({"n_layer", "num_hidden_layers"}, c.nLayer, 1);
  intKey({"n_head", "num_attention_heads"}, c.nHead, 1);
  intKey({"n_inner"}, c.nInner, 1);
  intKey({"bos_token_id"}, c.bosTokenId, 0);
  intKey({"eos_token_id"}, c.eosTokenId, 0);
  numKey("resid_pdrop", c.residPdrop, 0.0, 1.0);
  numKey("embd_pdrop", c.embdPdrop, 0.0, 1.0);
  numKey("attn_pdrop", c.attnPdrop, 0.0, 1.0);
  numKey("layer_norm_epsilon", c.layerNormEpsilon, 0.0, 1.0);
  numKey("initializer_range", c.initializerRange, 0.0, 10.0);
  boolKey("scale_attn_weights", c.scaleAttnWeights);
  boolKey("scale_attn_by_inverse_layer_idx", c.scaleAttnByInverseLayerIdx);
  boolKey("tie_word_embeddings", c.tieWordEmbeddings);
  if (j.contains("activation_function")) {
    seen.insert("activation_function");
    const json& v = j["activation_function"];
    static const std::set<std::string> known = {"gelu_new", "gelu_pytorch_tanh", "gelu", "relu"};
    if (!v.is_string() || !known.count(v.get<std::string>()))
      fail(where, "activation_function",
           "expected one of \"gelu_new\", \"gelu_pytorch_tanh\", \"gelu\", \"relu\", got " + v.dump());
    c.activation = v.get<std::string>();
  }
  for (const auto& [key, value] : j.items()) {
    if (seen.count(key)) continue;
    if (strict) fail(where, key, "unknown GPT-2 config key");
    (void)value;  // HF files carry many keys (n_ctx, summary_*, ...) that do not shape the net
  }
  c.validate(where, pointer);
  return c;
}

void Gpt2Config::validate(const std::string& where, bool pointer) const {
  if (nEmbd % nHead != 0)
    fail(pointer, where, "n_embd",
         "must be divisible by n_head (" + std::to_string(nEmbd) + " % " + std::to_string(nHead) +
             " != 0)");
}

Gpt2Config Gpt2Config::fromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open the model config", "is this a GPT-2 model folder?");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw InputError(path, "not valid JSON");
  if (j.contains("model_type") && j["model_type"] != "gpt2")
    throw InputError(path, "model_type is " + j["model_type"].dump() + ", expected \"gpt2\"");
  return fromJson(j, path, false);
}

json Gpt2Config::toJson() const {
  json j = {{"model_type", "gpt2"},
            {"architectures", {"GPT2LMHeadModel"}},
            {"vocab_size", vocabSize},
            {"n_positions", nPositions},
            {"n_ctx", nPositions},
            {"n_embd", nEmbd},
            {"n_layer", nLayer},
            {"n_head", nHead},
            {"n_inner", nInner > 0 ? json(nInner) : json(nullptr)},
            {"activation_function", activation},
            {"resid_pdrop", residPdrop},
            {"embd_pdrop", embdPdrop},
            {"attn_pdrop", attnPdrop},
            {"layer_norm_epsilon", layerNormEpsilon},
            {"initializer_range", initializerRange},
            {"scale_attn_weights", scaleAttnWeights},
            {"scale_attn_by_inverse_layer_idx", scaleAttnByInverseLayerIdx},
            {"reorder_and_upcast_attn", false},
            {"tie_word_embeddings", tieWordEmbeddings},
            {"bos_token_id", bosTokenId},
            {"eos_token_id", eosTokenId},
            {"use_cache", true}};
  return j;
}

}  // namespace wb
