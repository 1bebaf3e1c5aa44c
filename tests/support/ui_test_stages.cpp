// The synthetic stage; see ui_test_stages.h.
#include "tests/support/ui_test_stages.h"

#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "core/errors.h"
#include "core/run/runner.h"

namespace wb::test {
namespace {

using nlohmann::json;

class SynthStage : public Stage {
 public:
  void run(StageContext& ctx) override {
    const int64_t steps = ctx.integer("steps");
    const double stepMs = ctx.number("step_ms");
    const int64_t evalEvery = ctx.integer("eval_every");
    const int64_t failAt = ctx.integer("fail_at");
    const double noise = ctx.number("noise");
    const double scale = ctx.number("scale");
    std::mt19937_64 rng(ctx.profile().seed + static_cast<uint64_t>(ctx.index()));
    std::normal_distribution<double> normal(0.0, 1.0);
    const auto sleepFor = std::chrono::duration<double, std::milli>(stepMs);
    ctx.log("synthetic stage: " + std::to_string(steps) + " steps");
    for (int64_t step = 0; step < steps; ++step) {
      ctx.cancel().throwIfCancelled();
      if (step == failAt) throw RunError("synth", "failing on purpose at step " + std::to_string(step),
                                         "fail_at is set in the profile");
      const auto t0 = std::chrono::steady_clock::now();
      if (stepMs > 0) std::this_thread::sleep_for(sleepFor);
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double loss = scale * (1.0 + 3.0 * std::exp(-static_cast<double>(step) / (0.3 * steps + 1))) +
                          noise * normal(rng);
      ctx.sample("train/loss", step, loss);
      ctx.sample("train/step_time_s", step, dt);
      ctx.sample("train/samples_per_s", step, dt > 0 ? 8.0 / dt : 0.0);
      ctx.sample("mem/rss_mb", step, 100.0 + 0.01 * static_cast<double>(step) + 0.5 * normal(rng));
      if (evalEvery > 0 && (step + 1) % evalEvery == 0)
        ctx.sample("eval/perplexity", step, std::exp(loss) * (1.0 + 0.05 * normal(rng)));
      ctx.progress(step + 1, steps, dt > 0 ? 8.0 / dt : 0.0, "samples/s");
    }
    const int64_t points = ctx.integer("bench_points");
    const int64_t repeats = ctx.integer("repeats");
    for (int64_t p = 0; p < points; ++p) {
      for (int64_t r = 0; r < repeats; ++r) {
        ctx.cancel().throwIfCancelled();
        ctx.sample("infer/latency_s", p, scale * 0.001 * static_cast<double>(p + 1) * (1.0 + 0.1 * normal(rng)));
      }
    }
    ctx.log("synthetic stage done");
  }
};

}  // namespace

const StageRegistry& uiTestStages() {
  static const StageRegistry registry = [] {
    StageRegistry r;
    r.add({SectionSpec{"synth",
                       "Synthetic metrics for UI tests",
                       {{"steps", FieldKind::Int, 50, "Training steps to simulate", 1, 100000},
                        {"step_ms", FieldKind::Number, 5.0, "Milliseconds each step sleeps", 0.0, 60000.0},
                        {"eval_every", FieldKind::Int, 10, "Emit eval/perplexity every N steps (0: never)", 0, 1e8},
                        {"bench_points", FieldKind::Int, 3, "Benchmark points after training", 0, 1000},
                        {"repeats", FieldKind::Int, 5, "Repeats per benchmark point", 1, 1000},
                        {"noise", FieldKind::Number, 0.1, "Noise on the loss", 0.0, 10.0},
                        {"scale", FieldKind::Number, 1.0, "Scales loss and latency (to tell runs apart)", 0.0, 100.0},
                        {"fail_at", FieldKind::Int, -1, "Throw a RunError at this step (-1: never)", -1, 1e8},
                        {"mode", FieldKind::String, "normal", "Unused by the stage; a choice field for the form",
                         {}, {}, {"normal", "fast"}}}},
           [] { return std::make_unique<SynthStage>(); }});
    return r;
  }();
  return registry;
}

nlohmann::json synthProfile(const std::string& name, const nlohmann::json& stage, uint64_t seed) {
  json s = {{"type", "synth"}};
  for (const auto& [k, v] : stage.items()) s[k] = v;
  return {{"schema", 1},
          {"name", name},
          {"seed", seed},
          {"model", {{"source", "config"}, {"config", {{"n_layer", 2}, {"n_head", 2}, {"n_embd", 32}}}}},
          {"stages", json::array({s})}};
}

}  // namespace wb::test
