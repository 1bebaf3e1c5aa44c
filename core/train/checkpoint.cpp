// Checkpoint folders; see checkpoint.h.
#include "core/train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "core/errors.h"
#include "core/io/atomic_file.h"
#include "core/io/hf_checkpoint.h"
#include "core/io/remove_tree.h"
#include "core/io/safetensors.h"
#include "core/io/safetensors_torch.h"

#ifdef WB_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace wb {
namespace fs = std::filesystem;

namespace {

std::string stepName(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

torch::Tensor cpuRngState() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void setCpuRngState(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace

fs::path saveTrainingCheckpoint(const fs::path& root, Gpt2& model, const AdamW& optimizer,
                                const CheckpointState& state, int keepLast) {
  return saveTrainingCheckpoint(root, model, optimizer.stateTensors(), optimizer.steps(), state, keepLast);
}

fs::path saveTrainingCheckpoint(const fs::path& root, Gpt2& model,
                                std::vector<std::pair<std::string, torch::Tensor>> tensors,
                                int64_t optimizerSteps, const CheckpointState& state, int keepLast) {
  fs::create_directories(root);
  const fs::path final = root / stepName(state.step);
  const fs::path tmp = root / ("." + stepName(state.step) + ".tmp-" + std::to_string(getpid()));
  removeTree(tmp);
  fs::create_directories(tmp);
  saveHfCheckpoint(*model, model->config().toJson(), tmp);
  tensors.emplace_back("rng.cpu", cpuRngState());
#ifdef WB_WITH_CUDA
  const auto device = model->parameters().front().device();
  if (device.is_cuda()) {
    auto gen = at::cuda::detail::getDefaultCUDAGenerator(device.index());
    std::lock_guard<std::mutex> lock(gen.mutex());
    tensors.emplace_back("rng.cuda", gen.get_state());
  }
#endif
  saveTensors(tmp / "optimizer.safetensors", tensors, {{"format", "wb-adamw"}});
  const nlohmann::json meta = {{"step", state.step},
                               {"data_cursor", state.dataCursor},
                               {"optimizer_steps", optimizerSteps},
                               {"torch_version", compat::torchVersion()}};
  writeFileAtomic(tmp / "trainer.json", meta.dump(2) + "\n");
  writeFileAtomic(tmp / "DONE", "");
  removeTree(final);
  fs::rename(tmp, final);

  if (keepLast > 0) {
    std::vector<fs::path> done;
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory() && e.path().filename().string().starts_with("step-") &&
          fs::exists(e.path() / "DONE"))
        done.push_back(e.path());
    std::sort(done.begin(), done.end());
    for (size_t i = 0; i + static_cast<size_t>(keepLast) < done.size(); ++i) removeTree(done[i]);
  }
  return final;
}

CheckpointState loadTrainingCheckpoint(const fs::path& dir, Gpt2& model, AdamW& optimizer) {
  const LoadedCheckpoint c = readTrainingCheckpoint(dir, model);
  optimizer.loadState(c.optimizerState, c.optimizerSteps);
  return c.state;
}

LoadedCheckpoint readTrainingCheckpoint(const fs::path& dir, Gpt2& model) {
  if (!fs::exists(dir / "DONE"))
    throw InputError(dir.string(), "not a complete checkpoint (no DONE marker)",
                     "pick an earlier checkpoint folder");
  std::ifstream in(dir / "trainer.json");
  const auto meta = nlohmann::json::parse(in, nullptr, false);
  if (meta.is_discarded() || !meta.contains("step") || !meta.contains("data_cursor"))
    throw InputError((dir / "trainer.json").string(), "missing or malformed");
  loadHfWeights(*model, dir);
  const SafetensorsFile file = SafetensorsFile::open(dir / "optimizer.safetensors");
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& name : file.names()) tensors[name] = loadTensor(file, name);
  if (tensors.count("rng.cpu")) setCpuRngState(tensors["rng.cpu"]);
#ifdef WB_WITH_CUDA
  const auto device = model->parameters().front().device();
  if (device.is_cuda() && tensors.count("rng.cuda")) {
    auto gen = at::cuda::detail::getDefaultCUDAGenerator(device.index());
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(tensors["rng.cuda"]);
  }
#endif
  LoadedCheckpoint c;
  c.state = {meta["step"].get<int64_t>(), meta["data_cursor"].get<int64_t>()};
  c.optimizerSteps = meta.value("optimizer_steps", int64_t{0});
  tensors.erase("rng.cpu");
  tensors.erase("rng.cuda");
  c.optimizerState = std::move(tensors);
  return c;
}

std::optional<fs::path> latestCheckpoint(const fs::path& root) {
  std::optional<fs::path> best;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const auto name = e.path().filename().string();
    if (e.is_directory() && name.starts_with("step-") && fs::exists(e.path() / "DONE") &&
        (!best || name > best->filename().string()))
      best = e.path();
  }
  return best;
}

}  // namespace wb
