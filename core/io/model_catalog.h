// Offline discovery of GPT-2 models: the Hugging Face hub cache (models--ORG--NAME/
// snapshots/<rev>/) and plain model folders. Read-only and torch-free: it never
// downloads, never writes to the cache, and opens only config.json and file sizes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace wb {

struct CatalogEntry {
  std::string name;            // "gpt2", "openai-community/gpt2", or the folder's name
  std::filesystem::path path;  // the snapshot (or plain) folder with config.json
  std::string revision;        // the snapshot's commit hash; empty for plain folders
  int64_t parameterCount = 0;  // from config.json (a tied LM head counted once)
  uint64_t weightBytes = 0;    // size of the safetensors weight files on disk
  std::string problem;         // why the entry cannot be loaded; empty when it can
};

// $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (huggingface_hub's
// order). Empty variables count as unset.
std::filesystem::path hfCacheRoot();

// GPT-2 models in the cache, sorted by name: a repo is listed when its snapshot
// (refs/main's revision, else the newest snapshot) has config.json with model_type
// "gpt2" and safetensors weights. With includeUnusable, GPT-2 repos that fail those
// checks (only pickle weights, a broken config) are listed too with `problem` set.
// A missing cache root gives an empty list.
std::vector<CatalogEntry> listCachedModels(const std::filesystem::path& cacheRoot = hfCacheRoot(),
                                           bool includeUnusable = false);

// "hf:NAME[@REV]" -> the snapshot folder in the cache (REV: a ref such as "main" or a
// snapshot hash); bare names also match the openai-community/ and distilbert/ repos the
// originals moved to, and "openai-community/gpt2" also matches models--gpt2. Anything
// else is a folder path ("~/" expanded) that must hold config.json. InputError (naming
// the path, with a hint) otherwise.
std::filesystem::path resolveModelSource(const std::string& source,
                                         const std::filesystem::path& cacheRoot = hfCacheRoot());

// Describes one model folder (config + weights). Throws InputError when config.json is
// missing or not GPT-2; a folder without safetensors weights gets `problem` set.
CatalogEntry describeModelFolder(const std::filesystem::path& folder);

}  // namespace wb
