// GPT-2 hyper-parameters as Hugging Face's config.json spells them, with HF's
// defaults and aliases (n_embd/hidden_size, ...). Torch-free so the profile parser
// and the GUI can validate and show configs without LibTorch.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace wb {

struct Gpt2Config {
  int64_t vocabSize = 50257;
  int64_t nPositions = 1024;
  int64_t nEmbd = 768;
  int64_t nLayer = 12;
  int64_t nHead = 12;
  int64_t nInner = 0;  // 0: 4 * nEmbd
  std::string activation = "gelu_new";
  double residPdrop = 0.1, embdPdrop = 0.1, attnPdrop = 0.1;
  double layerNormEpsilon = 1e-5;
  double initializerRange = 0.02;
  bool scaleAttnWeights = true;
  bool scaleAttnByInverseLayerIdx = false;
  bool tieWordEmbeddings = true;
  int64_t bosTokenId = 50256, eosTokenId = 50256;

  int64_t innerDim() const { return nInner > 0 ? nInner : 4 * nEmbd; }
  int64_t headDim() const { return nEmbd / nHead; }
  // Parameters counted once (tied LM head not counted twice), as HF's num_parameters().
  int64_t parameterCount() const;

  // `strict`: unknown keys are errors (profiles); HF config.json files are read
  // leniently because they carry many keys we do not use. `where` prefixes messages
  // (a file name or a JSON pointer). Throws InputError / ProfileError.
  static Gpt2Config fromJson(const nlohmann::json& j, const std::string& where, bool strict);
  static Gpt2Config fromFile(const std::string& path);
  // A config.json that transformers' GPT2Config.from_pretrained accepts.
  nlohmann::json toJson() const;
  // `pointer`: `where` is a JSON pointer (errors become ProfileErrors for the GUI).
  void validate(const std::string& where, bool pointer = false) const;
};

}  // namespace wb
