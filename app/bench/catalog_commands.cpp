// `gpt2-bench inspect MODEL` and `gpt2-bench models`: what a model folder, an hf:NAME or
// a .safetensors file holds (config, parameter count, tensors, dtypes, sizes), and the
// GPT-2 models in the local Hugging Face cache. Read-only and offline; the work is in
// core/io (model_catalog, safetensors, hf_checkpoint).
#include <cstdio>
#include <iostream>
#include <map>

#include "app/bench/commands.h"
#include "core/errors.h"
#include "core/io/hf_checkpoint.h"
#include "core/io/hf_weight_files.h"
#include "core/io/model_catalog.h"
#include "core/io/safetensors.h"
#include "core/model/gpt2_config.h"

namespace wb::cli {
namespace fs = std::filesystem;
namespace {

std::string withCommas(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return n < 0 ? "-" + s : s;
}

std::string humanBytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / (1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / (1ull << 20));
  else if (b >= (1ull << 10))
    std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / (1ull << 10));
  else
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Opens (and so fully validates) each weight file and prints its tensors by dtype.
void printWeightFiles(const std::vector<fs::path>& files, bool listTensors) {
  for (const auto& path : files) {
    const auto f = SafetensorsFile::open(path);
    std::map<std::string, std::pair<int64_t, uint64_t>> byDtype;  // dtype -> (tensors, bytes)
    int64_t scalars = 0;
    for (const auto& name : f.names()) {
      const auto& info = f.info(name);
      auto& row = byDtype[dtypeName(info.dtype)];
      ++row.first;
      row.second += info.bytes();
      scalars += info.numel();
    }
    std::printf("file        %s (%s)\n", path.filename().c_str(), humanBytes(f.fileSize()).c_str());
    std::printf("tensors     %zu, %s values:", f.names().size(), withCommas(scalars).c_str());
    for (const auto& [dtype, row] : byDtype)
      std::printf(" %s x%lld (%s)", dtype.c_str(), static_cast<long long>(row.first),
                  humanBytes(row.second).c_str());
    std::printf("\n");
    for (const auto& [k, v] : f.metadata())
      std::printf("metadata    %s = %s\n", k.c_str(), v.c_str());
    if (listTensors)
      for (const auto& name : f.names()) {
        const auto& info = f.info(name);
        std::printf("  %-48s %-5s %s\n", name.c_str(), dtypeName(info.dtype),
                    shapeText(info.shape).c_str());
      }
  }
}

void inspect(const std::string& model, const std::string& cacheDir, bool listTensors, bool check) {
  const fs::path cache = cacheDir.empty() ? hfCacheRoot() : fs::path(cacheDir);
  if (!model.starts_with("hf:") && fs::is_regular_file(model)) {
    if (!model.ends_with(".safetensors"))
      throw InputError(model, "not a .safetensors file or a model folder",
                       "pickle files (.bin, .pt) are never read by this tool");
    printWeightFiles({fs::path(model)}, listTensors);
    return;
  }
  const fs::path folder = resolveModelSource(model, cache);
  const CatalogEntry e = describeModelFolder(folder);
  const Gpt2Config c = Gpt2Config::fromFile((folder / "config.json").string());
  std::printf("model       %s\n", model.c_str());
  std::printf("folder      %s\n", folder.c_str());
  if (folder.parent_path().filename() == "snapshots")
    std::printf("revision    %s\n", folder.filename().c_str());
  std::printf(
      "config      n_layer %lld, n_head %lld, n_embd %lld, n_inner %lld, vocab %lld, "
      "n_positions %lld, %s, %s embeddings\n",
      static_cast<long long>(c.nLayer), static_cast<long long>(c.nHead),
      static_cast<long long>(c.nEmbd), static_cast<long long>(c.innerDim()),
      static_cast<long long>(c.vocabSize), static_cast<long long>(c.nPositions),
      c.activation.c_str(), c.tieWordEmbeddings ? "tied" : "untied");
  std::printf("parameters  %s (from config.json)\n", withCommas(e.parameterCount).c_str());
  // Throws the weights' own error (pickle only, no weights) with its hint.
  const HfWeightFiles w = findHfWeightFiles(folder);
  const std::string shards =
      w.index.empty() ? "" : ", " + std::to_string(w.files.size()) + " shards";
  std::printf("weights     %s on disk%s\n", humanBytes(w.totalBytes()).c_str(), shards.c_str());
  printWeightFiles(w.files, listTensors);
  if (check) {
    const Gpt2LoadCheck r = checkGpt2Folder(folder);
    std::printf("load check  ok: %lld tensors, %s parameters into a GPT-2 module in %.2f s\n",
                static_cast<long long>(r.tensors), withCommas(r.parameters).c_str(), r.seconds);
  }
}

}  // namespace

void addCatalogCommands(CLI::App& app, int& exitCode) {
  auto* ins = app.add_subcommand(
      "inspect", "Show a model's config, parameter count and tensors (hf:NAME, folder or file)");
  static std::string model, cacheDir;
  static bool listTensors = false, check = false;
  ins->add_option("model", model,
                  "hf:NAME[@REV] from the Hugging Face cache, a folder with config.json and "
                  "model.safetensors, or a .safetensors file")
      ->required();
  ins->add_option("--cache", cacheDir,
                  "Hugging Face hub cache (default: $HF_HUB_CACHE, "
                  "$HF_HOME/hub or ~/.cache/huggingface/hub)");
  ins->add_flag("--tensors", listTensors, "List every tensor with dtype and shape");
  ins->add_flag("--check", check, "Build the GPT-2 module and load the weights into it");
  ins->callback([&exitCode] {
    inspect(model, cacheDir, listTensors, check);
    exitCode = kOk;
  });

  auto* models =
      app.add_subcommand("models", "List the GPT-2 models in the local Hugging Face cache");
  static std::string listCache;
  static bool all = false;
  models->add_option("--cache", listCache, "Hugging Face hub cache (default as for inspect)");
  models->add_flag("--all", all, "Also list GPT-2 repos that cannot be loaded, and why");
  models->callback([&exitCode] {
    const fs::path root = listCache.empty() ? hfCacheRoot() : fs::path(listCache);
    const auto list = listCachedModels(root, all);
    std::printf("cache %s: %zu GPT-2 model%s\n", root.c_str(), list.size(),
                list.size() == 1 ? "" : "s");
    for (const auto& e : list) {
      if (!e.problem.empty()) {
        std::printf("  hf:%-34s unusable: %s\n", e.name.c_str(), e.problem.c_str());
        continue;
      }
      std::printf("  hf:%-34s %15s params %12s  rev %.12s\n", e.name.c_str(),
                  withCommas(e.parameterCount).c_str(), humanBytes(e.weightBytes).c_str(),
                  e.revision.c_str());
    }
    std::fflush(stdout);  // keep the list before the notes when both go to one terminal
    if (!all) {
      const size_t hidden = listCachedModels(root, true).size() - list.size();
      if (hidden > 0)
        std::fprintf(stderr, "%zu more GPT-2 repo%s cannot be loaded: see --all\n", hidden,
                     hidden == 1 ? "" : "s");
    }
    if (list.empty())
      std::fprintf(stderr,
                   "hint: this tool never downloads; copy a models--* folder from a cache made "
                   "with `huggingface-cli download openai-community/gpt2` or set HF_HUB_CACHE\n");
    exitCode = kOk;
  });
}

}  // namespace wb::cli
