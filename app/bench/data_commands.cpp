// `gpt2-bench tokenize` and `gpt2-bench prepare-data`: GPT-2 token ids of a text file
// as a JSON array (or the encoder's throughput), and text -> nanoGPT train/val files.
// Thin wrappers: the work is in core/io (tokenizer, data_prep).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "app/bench/commands.h"
#include "core/bench/stats.h"
#include "core/errors.h"
#include "core/io/assets.h"
#include "core/io/data_prep.h"
#include "core/io/tokenizer.h"

namespace wb::cli {
namespace {

std::string readText(const std::string& ref) {
  const auto path = resolveAssetRef(ref);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), "cannot read text file");
  return {std::istreambuf_iterator<char>(in), {}};
}

// Warm-up, then `repeats` timed encodes of the whole text; prints MB/s (10^6 bytes).
void printThroughput(const Tokenizer& tok, const std::string& text, int repeats) {
  size_t tokens = tok.encode(text).size();
  std::vector<double> mbps;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    tokens = tok.encode(text).size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    mbps.push_back(double(text.size()) / s / 1e6);
  }
  const StatsSummary st = summarize(mbps);
  std::printf(
      "%zu bytes -> %zu tokens; encode %.2f ± %.2f MB/s (mean ± std, n=%lld, min %.2f, "
      "max %.2f, one thread)\n",
      text.size(), tokens, st.mean, st.std, static_cast<long long>(st.n), st.min, st.max);
}

}  // namespace

void addDataCommands(CLI::App& app, int& exitCode) {
  auto* tokenize =
      app.add_subcommand("tokenize", "Print the GPT-2 token ids of a text file as JSON");
  static std::string textRef, tokenizerDir;
  static bool allowSpecial = false;
  static int throughputRepeats = 0;
  tokenize->add_option("--text", textRef, "UTF-8 text file, or asset:NAME (asset:moby-dick)")
      ->required();
  tokenize->add_option("--tokenizer", tokenizerDir,
                       "Folder with vocab.json + merges.txt or encoder.json + vocab.bpe "
                       "(default: GPT-2's from the assets)");
  tokenize->add_flag("--allow-special", allowSpecial,
                     "Encode <|endoftext|> in the text as the special token 50256");
  tokenize
      ->add_option("--throughput", throughputRepeats,
                   "Instead of ids: time N encodes after one warm-up and print MB/s")
      ->check(CLI::Range(1, 1000));
  tokenize->callback([&exitCode] {
    std::shared_ptr<const Tokenizer> tok =
        tokenizerDir.empty()
            ? Tokenizer::gpt2Default()
            : std::make_shared<const Tokenizer>(Tokenizer::fromFolder(tokenizerDir));
    const std::string text = readText(textRef);
    if (throughputRepeats > 0) {
      printThroughput(*tok, text, throughputRepeats);
      exitCode = kOk;
      return;
    }
    std::vector<int32_t> ids;
    try {
      ids = tok->encode(text, {allowSpecial ? SpecialTokens::kAllow : SpecialTokens::kAsText});
    } catch (const InputError& e) {
      throw InputError(resolveAssetRef(textRef).string(), e.what(), e.hint());
    }
    std::string out = "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ", ";
      out += std::to_string(ids[i]);
    }
    out += "]\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    exitCode = kOk;
  });

  auto* prepare = app.add_subcommand(
      "prepare-data", "Tokenize text files into nanoGPT train.bin/val.bin + meta.json");
  static std::vector<std::string> textFiles;
  static std::string outDir;
  static double valFraction = 0.1;
  prepare->add_option("--text", textFiles, "Text files or asset:NAME, joined by <|endoftext|>")
      ->required();
  prepare->add_option("--out", outDir, "Output folder")->required();
  prepare->add_option("--val-fraction", valFraction, "Share of tokens (the last ones) for val.bin")
      ->capture_default_str();
  prepare->callback([&exitCode] {
    const PreparedData d = prepareData(textFiles, outDir, valFraction);
    std::printf("%s: train.bin %lld tokens, val.bin %lld tokens (val fraction %g), meta.json\n",
                d.dir.string().c_str(), static_cast<long long>(d.trainTokens),
                static_cast<long long>(d.valTokens), valFraction);
    exitCode = kOk;
  });
}

}  // namespace wb::cli
