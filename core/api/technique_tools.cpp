// Technique entry points for the CLI; see technique_tools.h.
#include "core/api/technique_tools.h"

#include <algorithm>

#include "core/bench/alloc_tracker.h"
#include "core/bench/bench_report.h"
#include "core/bench/memory_probe.h"
#include "core/bench/stats.h"
#include "core/bench/stats_json.h"
#include "core/errors.h"
#include "core/io/model_catalog.h"
#include "core/io/safetensors_torch.h"
#include "core/io/token_file.h"
#include "core/model/model_loader.h"
#include "core/run/run_state.h"
#include "core/techniques/distill.h"
#include "core/techniques/lora.h"

namespace wb {
namespace {

constexpr double kMb = 1024.0 * 1024.0;

torch::Device deviceFrom(const DeviceChoice& d) {
  if (d.threads > 0) torch::set_num_threads(d.threads);
  DeviceSpec spec;
  if (d.device != "cpu") {
    if (d.device.rfind("cuda", 0) != 0) throw InputError("--device", "expected cpu or cuda[:N], got " + d.device);
    spec.type = "cuda";
    if (d.device.size() > 5) spec.gpus = {std::stoi(d.device.substr(5))};
  }
  return pickDevice(spec);
}

void requireFp32(const DeviceChoice& d) {
  if (d.dtype != "fp32")
    throw InputError("--dtype", "this command runs in fp32 only", "LoRA adapters and training are fp32 here");
}

// "124M" / "355M" / "774M" (GPT-2 small / medium / large shapes), a JSON config, or a
// model source (hf:NAME, folder). Presets and configs get fresh weights from `seed`.
Gpt2 buildModel(const std::string& spec, uint64_t seed, const std::string& where) {
  Gpt2Config c;
  if (spec == "124M") {
  } else if (spec == "355M") {
    c.nLayer = 24, c.nEmbd = 1024, c.nHead = 16;
  } else if (spec == "774M") {
    c.nLayer = 36, c.nEmbd = 1280, c.nHead = 20;
  } else if (!spec.empty() && spec.front() == '{') {
    const auto j = nlohmann::json::parse(spec, nullptr, false);
    if (j.is_discarded()) throw InputError(where, "not valid JSON");
    c = Gpt2Config::fromJson(j, where, true);
  } else {
    return loadModelFolder(resolveModelSource(spec));
  }
  torch::manual_seed(seed);
  return Gpt2(c);
}

}  // namespace

nlohmann::json initLoraAdapter(const LoraInitRequest& r) {
  Gpt2 model = loadModelFolder(resolveModelSource(r.model));
  model->eval();
  torch::manual_seed(r.seed);
  LoraOptions o;
  o.rank = r.rank;
  o.alpha = r.alpha;
  o.targets = r.targets;
  LoraModel lora(model, o);  // A: peft's kaiming-uniform
  {
    torch::NoGradGuard g;
    for (auto& [name, t] : lora.parameters())
      if (name.ends_with("lora_B")) t.normal_(0.0, r.bStd);
  }
  lora.save(r.out, r.model);
  return {{"modules", lora.moduleNames()}, {"trainable_params", lora.trainableParameterCount()}};
}

nlohmann::json loraLogits(const LoraLogitsRequest& r) {
  requireFp32(r.device);
  const torch::Device device = deviceFrom(r.device);
  Gpt2 model = loadModelFolder(resolveModelSource(r.model));
  model->setAttentionBackend(parseAttentionBackend(r.device.attention, "--attention"));
  model->to(device);
  model->eval();
  std::unique_ptr<LoraModel> lora;
  if (!r.adapter.empty()) {
    lora = LoraModel::load(model, r.adapter);
    if (r.merge) lora->merge();
  }
  const TokenFile tokens(r.tokens);
  tokens.checkIds(static_cast<int32_t>(model->config().vocabSize));
  const int64_t t = std::min<int64_t>({r.seqLen, static_cast<int64_t>(tokens.size()), model->config().nPositions});
  if (t < 1) throw InputError(r.tokens, "no tokens");
  auto ids = torch::empty({1, t}, torch::kLong);
  for (int64_t i = 0; i < t; ++i) ids[0][i] = static_cast<int64_t>(tokens[static_cast<size_t>(i)]);
  torch::NoGradGuard g;
  const auto logits = model->forward(ids.to(device)).to(torch::kCPU, torch::kFloat32).contiguous();
  saveTensors(r.out, {{"logits", logits}, {"input_ids", ids}});
  return {{"tokens", t}, {"merged", lora && lora->merged()},
          {"modules", lora ? lora->moduleNames() : std::vector<std::string>{}}};
}

nlohmann::json benchTrainingStep(const TrainBenchRequest& r) {
  requireFp32(r.device);
  if (r.mode != "kd" && r.mode != "lora" && r.mode != "full")
    throw InputError("--mode", "unknown mode \"" + r.mode + "\" (kd, lora, full)");
  if (r.warmup < 1 || r.repeats < 2)
    throw InputError("--repeats", "need warm-up >= 1 and repeats >= 2 for a mean and a std");
  const torch::Device device = deviceFrom(r.device);
  const auto backend = parseAttentionBackend(r.device.attention, "--attention");

  Gpt2 teacher{nullptr}, model{nullptr};
  if (r.mode == "kd") {
    teacher = buildModel(r.teacher, r.seed, "--teacher");
    teacher->to(device);
    teacher->setAttentionBackend(backend);
    if (r.model.empty()) {
      torch::manual_seed(r.seed + 1);
      model = makeStudent(teacher, {r.studentLayers, StudentInit::EveryOther});
    } else {
      model = buildModel(r.model, r.seed + 1, "--model");
    }
  } else {
    model = buildModel(r.model, r.seed, "--model");
  }
  model->to(device);
  model->setAttentionBackend(backend);
  if (r.seqLen > model->config().nPositions)
    throw InputError("--seq-len", "exceeds the model's n_positions " + std::to_string(model->config().nPositions));

  std::unique_ptr<FrozenTeacher> frozen;
  std::unique_ptr<LoraModel> lora;
  TrainHooks hooks;
  KdOptions kd;
  kd.temperature = r.temperature;
  kd.alpha = r.alpha;
  if (teacher) {
    frozen = std::make_unique<FrozenTeacher>(teacher);
    hooks = distillationHooks(model, *frozen, kd);
  }
  if (r.mode == "lora") {
    LoraOptions lo;
    lo.rank = r.loraRank;
    lo.targets = r.loraTargets;
    torch::manual_seed(r.seed + 2);
    lora = std::make_unique<LoraModel>(model, lo);
    hooks.parameters = lora->parameters();
  }
  const NamedTensors trainable = lora ? lora->parameters() : trainableParameters(*model);
  int64_t trainableCount = 0;
  for (const auto& [name, t] : trainable) trainableCount += t.numel();
  const TrainingMemory mem = trainingMemory(*model, trainable, lora ? lora->parameters() : NamedTensors{});

  auto activations = std::make_shared<int64_t>(-1);
  auto inner = hooks.forward;
  hooks.forward = [m = model, inner, activations](const torch::Tensor& x) mutable {
    auto run = [&] { return inner ? inner(x) : m->forward(x); };
    if (*activations >= 0) return run();
    torch::Tensor logits;
    *activations = measureAllocations(x.device(), [&] { logits = run(); }).retainedBytes;
    return logits;
  };

  // Random tokens: the step's cost does not depend on their values.
  std::vector<uint16_t> tokens(static_cast<size_t>(std::max<int64_t>(1 << 20, 4 * r.batch * (r.seqLen + 1))));
  {
    torch::manual_seed(r.seed + 3);
    const auto ids = torch::randint(0, model->config().vocabSize, {static_cast<int64_t>(tokens.size())}, torch::kInt);
    const auto* p = ids.data_ptr<int32_t>();
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(p[i]);
  }
  TrainOptions o;
  o.steps = r.warmup + r.repeats;
  o.timingWarmup = r.warmup;
  o.batchSize = r.batch;
  o.seqLen = r.seqLen;
  o.lr = 1e-4;
  o.minLr = 1e-5;
  o.warmupSteps = 1;
  o.evalEvery = 0;
  o.seed = r.seed;
  std::vector<double> stepTimes, tokensPerS;
  double peakCudaMb = 0.0, peakRssMb = 0.0;
  TrainSink sink;
  sink.sample = [&](const std::string& s, int64_t, double v) {
    if (s == "train/step_time_s") stepTimes.push_back(v);
    else if (s == "train/tokens_per_s") tokensPerS.push_back(v);
    else if (s == "mem/cuda_peak_mb") peakCudaMb = std::max(peakCudaMb, v);
    else if (s == "mem/rss_mb") peakRssMb = std::max(peakRssMb, v);
  };
  resetPeakMemory(device);
  Trainer trainer(model, o, {tokens.data(), static_cast<int64_t>(tokens.size()), "random tokens"}, {}, hooks);
  trainer.run(sink, CancelToken());

  nlohmann::json out = {
      {"mode", r.mode},
      {"model", r.mode == "kd" && r.model.empty() ? r.teacher + " with " + std::to_string(model->config().nLayer) +
                                                        " layers (every other)"
                                                  : r.model},
      {"layers", model->config().nLayer},
      {"params", model->parameterCount()},
      {"trainable_params", trainableCount},
      {"batch", r.batch},
      {"seq_len", r.seqLen},
      {"attention", r.device.attention},
      {"device", device.str()},
      {"torch", compat::torchVersion()},
      {"commit", buildCommit()},
      {"timestamp", utcTimestamp()},
      {"warmup", r.warmup},
      {"step_time_s", samplesJson(stepTimes)},
      {"tokens_per_s", samplesJson(tokensPerS)},
      {"memory_mb",
       {{"weights", static_cast<double>(mem.weights) / kMb},
        {"gradients", static_cast<double>(mem.gradients) / kMb},
        {"optimizer_state", static_cast<double>(mem.optimizerState) / kMb},
        {"optimizer_state_measured", static_cast<double>(trainer.optimizer().stateBytes()) / kMb},
        {"activations", static_cast<double>(*activations) / kMb}}}};
  if (device.is_cuda()) out["peak_mb"] = {{"cuda_allocated", peakCudaMb}};
  else out["peak_mb"] = {{"process_rss", peakRssMb}};
  if (teacher) {
    out["teacher"] = r.teacher;
    out["teacher_layers"] = teacher->config().nLayer;
    out["teacher_params"] = teacher->parameterCount();
    out["memory_mb"]["teacher_weights"] = static_cast<double>(teacher->parameterBytes()) / kMb;
  }
  if (lora) out["lora"] = {{"rank", r.loraRank}, {"targets", r.loraTargets}};
  return out;
}

}  // namespace wb
