// Text -> nanoGPT token files: tokenizes text files with GPT-2's tokenizer, joins
// documents with <|endoftext|>, holds out the last tokens for validation and writes
// train.bin, val.bin and meta.json. Deterministic: no shuffling, no sampling.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace wb {

class Tokenizer;

struct PreparedData {
  std::filesystem::path dir;  // holds train.bin, val.bin, meta.json
  int64_t trainTokens = 0;
  int64_t valTokens = 0;
};

// `textFiles` are paths or "asset:NAME" references; valFraction in (0, 1): the last
// round(n * valFraction) tokens (at least one) go to val.bin. meta.json is written last,
// so its presence marks a complete folder. `tokenizer` null: GPT-2's from the assets.
PreparedData prepareData(const std::vector<std::string>& textFiles,
                         const std::filesystem::path& outDir, double valFraction,
                         const Tokenizer* tokenizer = nullptr);

// prepareData into ${XDG_CACHE_HOME:-~/.cache}/gpt2-workbench/data/<key>/, where key is
// the sha256 of the inputs' contents and valFraction; returns the cached folder when it
// is already complete. Safe against a concurrent process preparing the same key.
PreparedData ensurePreparedText(const std::vector<std::string>& textFiles, double valFraction);

std::filesystem::path dataCacheRoot();

}  // namespace wb
