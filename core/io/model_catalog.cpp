// HF cache and model folder discovery; see model_catalog.h. The cache layout is
// huggingface_hub's: models--ORG--NAME/{refs/<ref> (a commit hash), snapshots/<hash>/
// (symlinks into blobs/)}. Symlinks are followed for sizes and reads.
#include "core/io/model_catalog.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/io/hf_weight_files.h"
#include "core/model/gpt2_config.h"

namespace wb {
namespace fs = std::filesystem;

namespace {

constexpr const char* kRepoPrefix = "models--";

const char* envOrNull(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

fs::path homeDir() {
  const char* h = envOrNull("HOME");
  return h ? fs::path(h) : fs::path("/");
}

std::string repoDirName(const std::string& repoId) {
  std::string s = kRepoPrefix;
  for (char c : repoId) s += c == '/' ? std::string("--") : std::string(1, c);
  return s;
}

std::string repoIdOf(const std::string& dirName) {
  std::string rest = dirName.substr(std::string(kRepoPrefix).size()), out;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest.compare(i, 2, "--") == 0) {
      out += '/';
      ++i;
    } else {
      out += rest[i];
    }
  }
  return out;
}

std::string trim(std::string s) {
  const auto ws = " \t\r\n";
  s.erase(s.find_last_not_of(ws) + 1);
  s.erase(0, s.find_first_not_of(ws));
  return s;
}

const char* const kNoDownloadHint =
    "this tool never downloads. On a machine with internet run `huggingface-cli download "
    "openai-community/gpt2 config.json model.safetensors` and copy its "
    "~/.cache/huggingface/hub/models--* folder here, or set HF_HUB_CACHE to a copy of a cache; "
    "a plain folder with config.json and model.safetensors works too";

std::vector<std::string> snapshotNames(const fs::path& repoDir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(repoDir / "snapshots", ec))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The snapshot folder for `rev` (a ref name or a snapshot hash). For "main" without
// refs/main (a cache copied by hand), the most recently modified snapshot.
fs::path snapshotOf(const fs::path& repoDir, const std::string& rev) {
  if (rev.empty() || rev.find("..") != std::string::npos)
    throw InputError(repoDir.string(), "bad revision \"" + rev + "\"");
  const fs::path ref = repoDir / "refs" / rev;
  if (fs::is_regular_file(ref)) {
    std::ifstream in(ref, std::ios::binary);
    const std::string hash = trim({std::istreambuf_iterator<char>(in), {}});
    const fs::path snap = repoDir / "snapshots" / hash;
    if (hash.empty() || hash.find('/') != std::string::npos || !fs::is_directory(snap))
      throw InputError(
          ref.string(),
          "names snapshot \"" + hash + "\", which is not in " + (repoDir / "snapshots").string(),
          "the cache copy is incomplete; copy the whole models--* folder again");
    return snap;
  }
  const auto names = snapshotNames(repoDir);
  if (rev != "main") {
    if (std::find(names.begin(), names.end(), rev) != names.end())
      return repoDir / "snapshots" / rev;
    std::string have;
    for (const auto& n : names) have += (have.empty() ? "" : ", ") + n;
    throw InputError(repoDir.string(), "no ref or snapshot \"" + rev + "\"",
                     have.empty() ? "the repo has no snapshots" : "snapshots here: " + have);
  }
  if (names.empty())
    throw InputError((repoDir / "snapshots").string(), "no snapshots in the cached repo",
                     "the download was incomplete; copy the models--* folder again");
  fs::path newest;
  fs::file_time_type newestTime{};
  for (const auto& n : names) {  // ascending names: ties go to the last name
    std::error_code ec;
    const auto t = fs::last_write_time(repoDir / "snapshots" / n, ec);
    if (!ec && (newest.empty() || t >= newestTime)) {
      newest = repoDir / "snapshots" / n;
      newestTime = t;
    }
  }
  return newest;
}

// model_type from config.json; empty when the file is missing or unreadable.
std::string modelTypeOf(const fs::path& folder) {
  std::ifstream in(folder / "config.json", std::ios::binary);
  if (!in) return {};
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("model_type") ||
      !j["model_type"].is_string())
    return {};
  return j["model_type"].get<std::string>();
}

fs::path expandHome(const std::string& p) {
  if (p == "~") return homeDir();
  if (p.starts_with("~/")) return homeDir() / p.substr(2);
  return p;
}

}  // namespace

fs::path hfCacheRoot() {
  if (const char* v = envOrNull("HF_HUB_CACHE")) return expandHome(v);
  if (const char* v = envOrNull("HUGGINGFACE_HUB_CACHE")) return expandHome(v);
  if (const char* v = envOrNull("HF_HOME")) return expandHome(v) / "hub";
  if (const char* v = envOrNull("XDG_CACHE_HOME")) return expandHome(v) / "huggingface" / "hub";
  return homeDir() / ".cache" / "huggingface" / "hub";
}

CatalogEntry describeModelFolder(const fs::path& folder) {
  const fs::path config = folder / "config.json";
  if (!fs::is_regular_file(config))
    throw InputError(folder.string(), "no config.json in the model folder",
                     "a GPT-2 model folder holds config.json and model.safetensors");
  const Gpt2Config cfg = Gpt2Config::fromFile(config.string());
  CatalogEntry e;
  e.name = folder.filename().string();
  e.path = folder;
  e.parameterCount = cfg.parameterCount();
  try {
    e.weightBytes = findHfWeightFiles(folder).totalBytes();
  } catch (const InputError& err) {
    e.problem = err.what();
  }
  return e;
}

std::vector<CatalogEntry> listCachedModels(const fs::path& cacheRoot, bool includeUnusable) {
  std::vector<CatalogEntry> out;
  std::error_code ec;
  for (const auto& dir : fs::directory_iterator(cacheRoot, ec)) {
    const std::string dirName = dir.path().filename().string();
    if (!dir.is_directory() || !dirName.starts_with(kRepoPrefix)) continue;
    CatalogEntry e;
    e.name = repoIdOf(dirName);
    e.path = dir.path();
    try {
      const fs::path snap = snapshotOf(dir.path(), "main");
      e.path = snap;
      e.revision = snap.filename().string();
      if (modelTypeOf(snap) != "gpt2") continue;  // other architectures share the cache
      CatalogEntry d = describeModelFolder(snap);
      e.parameterCount = d.parameterCount;
      e.weightBytes = d.weightBytes;
      e.problem = d.problem;
    } catch (const InputError& err) {
      e.problem = err.what();
    }
    if (e.problem.empty() || includeUnusable) out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(),
            [](const CatalogEntry& a, const CatalogEntry& b) { return a.name < b.name; });
  return out;
}

fs::path resolveModelSource(const std::string& source, const fs::path& cacheRoot) {
  if (!source.starts_with("hf:")) {
    if (source.empty())
      throw InputError("model.source", "empty model source", "give hf:NAME or a model folder");
    const fs::path folder = expandHome(source);
    if (!fs::is_directory(folder))
      throw InputError(folder.string(), fs::exists(folder) ? "not a folder" : "no such folder",
                       "give a model folder with config.json and model.safetensors, or hf:NAME "
                       "for a model in the Hugging Face cache");
    if (!fs::is_regular_file(folder / "config.json"))
      throw InputError(folder.string(), "no config.json in the model folder",
                       "a GPT-2 model folder holds config.json and model.safetensors");
    return folder;
  }

  std::string name = source.substr(3), rev = "main";
  if (const auto at = name.find('@'); at != std::string::npos) {
    rev = name.substr(at + 1);
    name = name.substr(0, at);
  }
  if (name.empty() || name.find("..") != std::string::npos ||
      std::count(name.begin(), name.end(), '/') > 1 || name.front() == '/' || name.back() == '/')
    throw InputError(source, "expected hf:NAME or hf:ORG/NAME (optionally @REVISION)");

  // gpt2, gpt2-medium, ... moved to openai-community/ and distilgpt2 to distilbert/; a
  // cache may hold either spelling.
  std::vector<std::string> candidates = {name};
  if (name.find('/') == std::string::npos) {
    candidates.push_back("openai-community/" + name);
    candidates.push_back("distilbert/" + name);
  } else if (name.starts_with("openai-community/") || name.starts_with("distilbert/")) {
    candidates.push_back(name.substr(name.find('/') + 1));
  }
  for (const auto& c : candidates) {
    const fs::path repoDir = cacheRoot / repoDirName(c);
    if (!fs::is_directory(repoDir)) continue;
    const fs::path snap = snapshotOf(repoDir, rev);
    if (!fs::is_regular_file(snap / "config.json"))
      throw InputError(snap.string(), "the cached snapshot has no config.json", kNoDownloadHint);
    return snap;
  }
  std::string have;
  for (const auto& e : listCachedModels(cacheRoot)) have += (have.empty() ? "" : ", ") + e.name;
  throw InputError(
      (cacheRoot / repoDirName(name)).string(),
      name + " is not in the Hugging Face cache at " + cacheRoot.string() +
          (have.empty() ? " (it holds no GPT-2 model)" : " (GPT-2 models there: " + have + ")"),
      kNoDownloadHint);
}

}  // namespace wb
