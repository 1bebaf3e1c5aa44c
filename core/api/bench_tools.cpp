// `gpt2-bench bench`; see bench_tools.h.
#include "core/api/bench_tools.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "core/bench/benchmark.h"
#include "core/bench/weight_formats.h"
#include "core/errors.h"
#include "core/io/atomic_file.h"
#include "core/model/model_loader.h"
#include "core/run/profile.h"
#include "core/run/run_state.h"
#include "core/stages/stages.h"

namespace wb {

BenchOutput runBenchmark(const BenchRequest& r) {
  // Sweep settings: the benchmark stage's defaults table, overlaid by the profile's
  // first benchmark stage, overlaid by the request.
  const StageType* type = builtinStages().find("benchmark");
  nlohmann::json params = validateSection(nlohmann::json::object(), type->schema, "/benchmark");
  Gpt2 model{nullptr};
  torch::Device device(torch::kCPU);
  torch::Dtype dtype = torch::kFloat32;
  std::string modelName, dtypeName;
  int threads = 0;
  uint64_t seed = r.seed;
  if (!r.profile.empty()) {
    const Profile p = loadProfile(r.profile, builtinStages());
    for (const auto& s : p.stages)
      if (s.type == "benchmark") {
        params = s.params;
        break;
      }
    device = pickDevice(p.device);
    dtype = parseDtype(p.device.dtype, "/device/dtype");
    dtypeName = p.device.dtype;
    threads = p.device.threads;
    seed = p.seed;
    model = loadModel(p.model, p.seed);
    modelName = p.model.source == "config" ? p.name + " (config)" : p.model.source;
  } else {
    if (r.model.empty()) throw InputError("bench", "give a profile or --model", "e.g. --model hf:gpt2");
    DeviceSpec d;
    d.type = r.device.device.rfind("cuda", 0) == 0 ? "cuda" : "cpu";
    if (r.device.device.size() > 5) d.gpus = {std::stoi(r.device.device.substr(5))};
    device = pickDevice(d);
    dtype = parseDtype(r.device.dtype, "--dtype");
    dtypeName = r.device.dtype;
    threads = r.device.threads;
    ModelSpec spec;
    if (!r.model.empty() && r.model[0] == '{') {
      spec.source = "config";
      spec.config = nlohmann::json::parse(r.model, nullptr, false);
      if (spec.config.is_discarded()) throw InputError("--model", "not valid JSON");
    } else {
      spec.source = r.model;
    }
    model = loadModel(spec, seed);
    modelName = spec.source == "config" ? "config " + spec.config.dump() : spec.source;
  }
  torch::set_num_threads(threads > 0 ? threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  checkDtypeSupported(dtype, device);
  model->to(device);  // fp32 master; each weight format casts its own copy

  if (r.batchSizes) params["batch_sizes"] = *r.batchSizes;
  if (r.seqLens) params["seq_lens"] = *r.seqLens;
  if (r.backends) params["backends"] = *r.backends;
  if (r.weights) params["weights"] = *r.weights;
  if (r.decodeTokens) params["decode_tokens"] = *r.decodeTokens;
  if (r.warmup) params["warmup"] = *r.warmup;
  if (r.repeats) params["repeats"] = *r.repeats;
  params = validateSection(params, type->schema, "/benchmark");  // ranges and choices of the overrides

  SweepOptions o;
  o.batchSizes = params["batch_sizes"].get<std::vector<int64_t>>();
  o.seqLens = params["seq_lens"].get<std::vector<int64_t>>();
  o.backends.clear();
  for (const auto& b : params["backends"].get<std::vector<std::string>>())
    o.backends.push_back(parseAttentionBackend(b, "--backends"));
  o.decodeTokens = params["decode_tokens"].get<int64_t>();
  o.warmup = params["warmup"].get<int64_t>();
  o.repeats = params["repeats"].get<int64_t>();
  o.seed = seed;
  std::vector<BenchPoint> points;
  Gpt2 metaModel{nullptr};
  for (const auto& format : params["weights"].get<std::vector<std::string>>()) {
    // Unlike a profile run, an unsupported format is an error here: the user asked for it.
    auto v = makeWeightVariant(model, format, dtype, device, dtypeName);  // "fp32", as profiles spell it
    o.weights = v.label;
    const auto part = runSweep(v.model, o);
    points.insert(points.end(), part.begin(), part.end());
    if (metaModel.is_empty()) metaModel = v.model;
  }
  const auto meta = benchMeta(metaModel, o, modelName);

  BenchOutput out;
  out.markdown = benchMarkdown(meta, points);
  out.csv = benchCsv(meta, points);
  out.json = benchJson(meta, points);
  if (!r.outDir.empty()) {
    const std::filesystem::path dir(r.outDir);
    std::filesystem::create_directories(dir);
    writeFileAtomic(dir / "bench.md", out.markdown);
    writeFileAtomic(dir / "bench.csv", out.csv);
    writeFileAtomic(dir / "bench.json", out.json.dump(2));
    for (const char* f : {"bench.md", "bench.csv", "bench.json"}) out.files.push_back((dir / f).string());
  }
  return out;
}

}  // namespace wb
