// Text files -> train.bin/val.bin/meta.json; see data_prep.h.
#include "core/io/data_prep.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/io/assets.h"
#include "core/io/atomic_file.h"
#include "core/io/remove_tree.h"
#include "core/io/sha256.h"
#include "core/io/token_file.h"
#include "core/io/tokenizer.h"

namespace wb {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Bump when the output format or the splitting rule changes, so old caches are not reused.
constexpr const char* kCacheFormat = "wb-data-1";

std::string readText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError(path.string(),
                     fs::exists(path) ? "cannot read text file" : "text file is missing");
  return {std::istreambuf_iterator<char>(in), {}};
}

void checkFraction(double valFraction) {
  if (!(valFraction > 0.0 && valFraction < 1.0))
    throw InputError("val_fraction",
                     "must be between 0 and 1 (exclusive), got " + std::to_string(valFraction));
}

std::string fractionText(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", f);
  return buf;
}

}  // namespace

PreparedData prepareData(const std::vector<std::string>& textFiles, const fs::path& outDir,
                         double valFraction, const Tokenizer* tokenizer) {
  checkFraction(valFraction);
  if (textFiles.empty()) throw InputError("text", "no text files given");
  std::shared_ptr<const Tokenizer> owned;
  if (!tokenizer) {
    owned = Tokenizer::gpt2Default();
    tokenizer = owned.get();
  }
  if (tokenizer->eotId() < 0)
    throw InputError(tokenizer->source(),
                     "the vocabulary has no <|endoftext|> token to join documents");

  std::vector<int32_t> ids;
  json sources = json::array();
  for (size_t i = 0; i < textFiles.size(); ++i) {
    const fs::path path = resolveAssetRef(textFiles[i]);
    const std::string text = readText(path);
    if (i > 0) ids.push_back(tokenizer->eotId());
    const size_t before = ids.size();
    try {
      tokenizer->encodeAppend(text, ids);
    } catch (const InputError& e) {
      throw InputError(path.string(), e.what(), e.hint());  // name the file, not "text"
    }
    sources.push_back({{"path", textFiles[i]},
                       {"file", path.string()},
                       {"sha256", sha256Hex(text)},
                       {"bytes", text.size()},
                       {"tokens", ids.size() - before}});
  }
  const auto n = int64_t(ids.size());
  const int64_t nVal = std::max<int64_t>(1, std::llround(double(n) * valFraction));
  if (n - nVal < 1)
    throw InputError(textFiles.front(),
                     "only " + std::to_string(n) + " tokens: too few to split into train and val");
  const int64_t nTrain = n - nVal;

  fs::create_directories(outDir);
  writeTokenFile(outDir / "train.bin", std::span<const int32_t>(ids.data(), size_t(nTrain)));
  writeTokenFile(outDir / "val.bin", std::span<const int32_t>(ids.data() + nTrain, size_t(nVal)));
  const json meta = {{"vocab_size", tokenizer->vocabSize()},
                     {"tokenizer", owned ? std::string("gpt2") : tokenizer->source()},
                     {"sources", sources},
                     {"train_tokens", nTrain},
                     {"val_tokens", nVal},
                     {"val_fraction", valFraction},
                     {"eot_id", tokenizer->eotId()},
                     {"dtype", "uint16"}};
  writeFileAtomic(outDir / "meta.json", meta.dump(2) + "\n");
  return {outDir, nTrain, nVal};
}

fs::path dataCacheRoot() {
  fs::path cache;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    cache = x;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    cache = fs::path(home) / ".cache";
  } else {
    throw InputError("data cache", "neither XDG_CACHE_HOME nor HOME is set");
  }
  return cache / "gpt2-workbench" / "data";
}

PreparedData ensurePreparedText(const std::vector<std::string>& textFiles, double valFraction) {
  checkFraction(valFraction);
  if (textFiles.empty()) throw InputError("text", "no text files given");
  // Keyed by content, not by path: an edited file gets a new folder, a moved one does not.
  Sha256 key;
  key.update(kCacheFormat);
  key.update("\ntokenizer=gpt2\nval_fraction=" + fractionText(valFraction) + "\n");
  for (const auto& f : textFiles) key.update(sha256File(resolveAssetRef(f)) + "\n");
  const fs::path dir = dataCacheRoot() / key.finishHex();

  const auto readMeta = [&dir]() -> PreparedData {
    std::ifstream in(dir / "meta.json");
    const json meta = json::parse(in);
    return {dir, meta.at("train_tokens").get<int64_t>(), meta.at("val_tokens").get<int64_t>()};
  };
  if (fs::exists(dir / "meta.json")) {
    try {
      return readMeta();
    } catch (const std::exception&) {
      // A damaged cache entry is rebuilt below.
    }
  }
  // Prepare into a private folder, then publish it with one rename.
  fs::create_directories(dir.parent_path());
  const fs::path tmp = dir.string() + ".tmp-" + std::to_string(::getpid());
  removeTree(tmp);
  PreparedData result = prepareData(textFiles, tmp, valFraction);
  std::error_code ec;
  fs::rename(tmp, dir, ec);  // fails when `dir` exists and is not empty
  if (ec) {
    std::optional<PreparedData> theirs;
    try {
      theirs = readMeta();  // another process published it meanwhile
    } catch (const std::exception&) {
      // A damaged entry: replaced below.
    }
    if (theirs) {
      // Outside the try: failing to delete our copy must not delete their good entry.
      removeTree(tmp);
      return *theirs;
    }
    removeTree(dir);  // a damaged entry: replace it
    fs::rename(tmp, dir, ec);
    if (ec) {
      removeTree(tmp);
      throw RunError(dir.string(), "cannot publish the prepared data: " + ec.message());
    }
  }
  result.dir = dir;
  return result;
}

}  // namespace wb
