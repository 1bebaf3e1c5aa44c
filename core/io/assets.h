// The assets folder written by scripts/bootstrap (GPT-2's BPE files, Moby Dick):
// where it is, its manifest.json, and verified paths to its files. Each file's sha256
// is checked against the manifest once per process. Downloading is bootstrap's job,
// never this code's.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace wb {

// ${WB_ASSETS_DIR}, else ${XDG_CACHE_HOME:-~/.cache}/gpt2-workbench/assets.
std::filesystem::path assetsDir();

// Path of a file listed in the manifest, after its sha256 matched (checked once per
// process per path). InputError naming the file when missing, unlisted or mismatched.
std::filesystem::path assetPath(std::string_view name);

// "asset:NAME" names an asset (NAME as listed, or NAME.txt: "asset:moby-dick");
// anything else is a plain path and is returned unchanged.
bool isAssetRef(std::string_view ref);
std::filesystem::path resolveAssetRef(std::string_view ref);

// The hint every asset error carries.
extern const char* const kAssetsHint;

}  // namespace wb
