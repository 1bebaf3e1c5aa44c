// Verified access to the bootstrap's assets; see assets.h.
#include "core/io/assets.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/io/sha256.h"

namespace wb {
namespace fs = std::filesystem;

const char* const kAssetsHint =
    "run scripts/bootstrap (or WB_ASSETS_FROM=folder scripts/bootstrap offline)";

namespace {

constexpr std::string_view kAssetPrefix = "asset:";

struct ManifestEntry {
  std::string sha256;
  int64_t bytes = -1;  // -1: not recorded
};

// Reads manifest.json: {"schema": 1, "files": [{"name", "sha256", "bytes", ...}]}.
std::map<std::string, ManifestEntry> readManifest(const fs::path& dir) {
  const fs::path path = dir / "manifest.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), "assets manifest is missing", kAssetsHint);
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path.string(), std::string("not valid JSON: ") + e.what(), kAssetsHint);
  }
  std::map<std::string, ManifestEntry> entries;
  if (!root.is_object() || !root.contains("files") || !root["files"].is_array())
    throw InputError(path.string(), "expected an object with a \"files\" array", kAssetsHint);
  for (size_t i = 0; i < root["files"].size(); ++i) {
    const auto& f = root["files"][i];
    const std::string where = path.string() + ": /files/" + std::to_string(i);
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || !f.contains("sha256") ||
        !f["sha256"].is_string())
      throw InputError(where, "expected {\"name\": string, \"sha256\": string, ...}", kAssetsHint);
    ManifestEntry e;
    e.sha256 = f["sha256"].get<std::string>();
    if (f.contains("bytes") && f["bytes"].is_number_integer()) e.bytes = f["bytes"].get<int64_t>();
    entries[f["name"].get<std::string>()] = e;
  }
  return entries;
}

std::mutex gMutex;
std::map<std::string, bool> gVerified;  // absolute file path -> sha256 matched

}  // namespace

fs::path assetsDir() {
  if (const char* d = std::getenv("WB_ASSETS_DIR"); d && *d) return d;
  fs::path cache;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    cache = x;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    cache = fs::path(home) / ".cache";
  } else {
    throw InputError("assets", "neither WB_ASSETS_DIR, XDG_CACHE_HOME nor HOME is set",
                     "set WB_ASSETS_DIR to the folder scripts/bootstrap filled");
  }
  return cache / "gpt2-workbench" / "assets";
}

fs::path assetPath(std::string_view name) {
  const fs::path dir = assetsDir();
  const fs::path path = dir / std::string(name);
  std::lock_guard lock(gMutex);
  if (gVerified.count(path.string())) return path;
  if (!fs::exists(path)) throw InputError(path.string(), "asset is missing", kAssetsHint);
  const auto manifest = readManifest(dir);
  const auto it = manifest.find(std::string(name));
  if (it == manifest.end())
    throw InputError(path.string(), "asset is not listed in " + (dir / "manifest.json").string(),
                     kAssetsHint);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (it->second.bytes >= 0 && !ec && int64_t(size) != it->second.bytes)
    throw InputError(path.string(),
                     "asset has " + std::to_string(size) + " bytes, the manifest says " +
                         std::to_string(it->second.bytes),
                     kAssetsHint);
  const std::string sum = sha256File(path);
  if (sum != it->second.sha256)
    throw InputError(path.string(),
                     "asset sha256 " + sum + " does not match the manifest's " + it->second.sha256,
                     kAssetsHint);
  gVerified[path.string()] = true;
  return path;
}

bool isAssetRef(std::string_view ref) {
  return ref.starts_with(kAssetPrefix);
}

fs::path resolveAssetRef(std::string_view ref) {
  if (!isAssetRef(ref)) return fs::path(std::string(ref));
  const std::string name(ref.substr(kAssetPrefix.size()));
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw InputError(std::string(ref), "expected asset:NAME with a plain file name");
  const fs::path dir = assetsDir();
  // The listed name wins; "asset:moby-dick" falls back to moby-dick.txt.
  if (fs::exists(dir / name) && name != "manifest.json") return assetPath(name);
  return assetPath(name + ".txt");
}

}  // namespace wb
