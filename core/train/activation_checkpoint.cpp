// Recompute-in-backward; see activation_checkpoint.h.
#include "core/train/activation_checkpoint.h"

#include <optional>

namespace wb {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What backward needs to recompute exactly what forward computed.
struct Recompute : torch::CustomClassHolder {
  CheckpointFn fn;
  c10::Device device{c10::kCPU};
  bool autocast = false;
  at::ScalarType autocastDtype = at::kFloat;
  torch::Tensor rngState;  // of the device's default generator at forward time
};

at::Generator defaultGenerator(const c10::Device& device) {
  return at::globalContext().defaultGenerator(device);
}

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, c10::IValue recompute) {
    ctx->save_for_backward({x});
    ctx->saved_data["recompute"] = recompute;
    // Runs with grad disabled (autograd::Function does that): nothing is kept.
    auto r = c10::static_intrusive_pointer_cast<Recompute>(recompute.toCapsule());
    return r->fn(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOut) {
    auto r = c10::static_intrusive_pointer_cast<Recompute>(ctx->saved_data["recompute"].toCapsule());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      // Backward may run on another thread (the CUDA device thread), where autocast is
      // off: restore the forward's state so the recomputation matches it.
      std::optional<compat::AutocastGuard> autocast;
      if (r->autocast) autocast.emplace(r->device.type(), r->autocastDtype);
      // Dropout inside fn must draw the same masks as in forward.
      auto gen = defaultGenerator(r->device);
      torch::Tensor stateNow;
      {
        std::lock_guard<std::mutex> lock(gen.mutex());
        stateNow = gen.get_state();
        gen.set_state(r->rngState);
      }
      y = r->fn(x);
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(stateNow);
    }
    torch::autograd::backward({y}, {gradOut[0]});
    return {x.grad(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed(CheckpointFn fn, const torch::Tensor& x) {
  auto r = c10::make_intrusive<Recompute>();
  r->fn = std::move(fn);
  r->device = x.device();
  const auto [enabled, dtype] = compat::autocastState(x.device().type());
  r->autocast = enabled;
  r->autocastDtype = dtype;
  auto gen = defaultGenerator(x.device());
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    r->rngState = gen.get_state();
  }
  return CheckpointFunction::apply(x, c10::IValue::make_capsule(r));
}

}  // namespace wb
