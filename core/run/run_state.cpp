// Device, dtype, model and data of a run; see run_state.h.
#include "core/run/run_state.h"

#include <thread>

#include "core/io/data_prep.h"
#include "core/io/tokenizer.h"
#include "core/model/model_loader.h"

namespace wb {

torch::Dtype parseDtype(const std::string& name, const std::string& where) {
  if (name == "fp32") return torch::kFloat32;
  if (name == "bf16") return torch::kBFloat16;
  if (name == "fp16") return torch::kFloat16;
  throw InputError(where, "unknown dtype \"" + name + "\" (fp32, bf16, fp16)");
}

torch::Device pickDevice(const DeviceSpec& spec) {
  if (spec.type == "cpu") return torch::Device(torch::kCPU);
  if (!compat::cudaAvailable())
    throw InputError("/device/type", "CUDA was requested but this build or machine has none",
                     "use \"type\": \"cpu\", or build against a CUDA LibTorch (docs/BUILDING.md)");
  const int index = spec.gpus.empty() ? 0 : spec.gpus.front();
  if (index >= static_cast<int>(torch::cuda::device_count()))
    throw InputError("/device/gpus", "GPU " + std::to_string(index) + " does not exist (" +
                                         std::to_string(torch::cuda::device_count()) + " visible)");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

RunState::RunState(const Profile& p) : profile(p) {
  device = pickDevice(p.device);
  dtype = parseDtype(p.device.dtype, "/device/dtype");
  // Debian's LibTorch defaults to one intra-op thread.
  const int threads = p.device.threads > 0 ? p.device.threads
                                           : static_cast<int>(std::thread::hardware_concurrency());
  torch::set_num_threads(std::max(1, threads));
  torch::manual_seed(p.seed);
}

RunState::~RunState() = default;

Gpt2& RunState::model() {
  if (model_.is_empty()) {
    model_ = loadModel(profile.model, profile.seed);
    model_->to(device);
  }
  return model_;
}

void RunState::setModel(Gpt2 model) { model_ = std::move(model); }

void RunState::loadData() {
  if (train_) return;
  const DataSpec& d = profile.data;
  if (!d.text.empty()) {
    const PreparedData prepared = ensurePreparedText(d.text, d.valFraction);
    train_ = std::make_unique<TokenFile>(prepared.dir / "train.bin");
    val_ = std::make_unique<TokenFile>(prepared.dir / "val.bin");
  } else if (!d.train.empty()) {
    train_ = std::make_unique<TokenFile>(d.train);
    if (d.val.empty())
      throw InputError("/data/val", "a validation file is required with data.train",
                       "evaluation on training tokens would hide overfitting");
    val_ = std::make_unique<TokenFile>(d.val);
  } else {
    throw InputError("/data", "this stage needs token data: set data.text or data.train + data.val");
  }
}

const TokenFile& RunState::trainTokens() {
  loadData();
  return *train_;
}

const TokenFile& RunState::valTokens() {
  loadData();
  return *val_;
}

std::shared_ptr<const Tokenizer> RunState::tokenizer() {
  if (!tokenizer_) tokenizer_ = Tokenizer::gpt2Default();
  return tokenizer_;
}

void RunState::keepModel(const std::string& role, Gpt2 model, const std::string& stage) {
  kept_[role] = KeptModel{std::move(model), stage};
}

const RunState::KeptModel* RunState::keptModel(const std::string& role) const {
  const auto it = kept_.find(role);
  return it == kept_.end() ? nullptr : &it->second;
}

}  // namespace wb
