// Issue 7 on the CPU build: AMP and fused AdamW give clear errors where LibTorch or
// the device cannot do them; the fp16 loss scaler skips inf/NaN steps, backs off and
// grows; activation checkpointing gives the same loss and gradients as plain backward
// (fp32, 1e-6 abs + 1e-5 rel), with dropout too (RNG replayed); the static-position
// KV cache behind CUDA-graph decode gives the eager path's logits (fp32, 1e-5 abs +
// 1e-5 rel); fused AdamW equals ours where LibTorch has it (1e-6 abs + 1e-5 rel); the
// CPU perf commands run end to end.
#include "core/bench/perf_decode.h"
#include "core/bench/perf_matmul.h"
#include "core/bench/perf_train.h"
#include "core/bench/timer.h"
#include "core/model/graph_decode.h"
#include "core/train/amp.h"
#include "core/train/trainer.h"
#include "tests/support/torch_support.h"

#include <QtTest>

#include <thread>

using namespace wb;

namespace {

Gpt2Config tiny(double dropout = 0.0) {
  return test::tinyConfig({.vocab = 97, .layers = 3, .dropout = dropout});
}

template <typename F>
QString errorOf(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return QString::fromStdString(e.what()) + " | " + QString::fromStdString(e.hint());
  }
  return {};
}

// Loss and parameter gradients of one forward/backward.
std::pair<double, std::vector<torch::Tensor>> lossAndGrads(Gpt2& m, const torch::Tensor& x, bool ckpt) {
  m->setActivationCheckpointing(ckpt);
  m->train();
  m->zero_grad();
  auto logits = m->forward(x);
  auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), x.reshape({-1}));
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : m->parameters()) grads.push_back(p.grad().clone());
  return {loss.item<double>(), grads};
}

}  // namespace

class TestAmp : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void precisionNamesRoundTrip() {
    for (auto p : {Precision::Fp32, Precision::Bf16, Precision::Fp16})
      QCOMPARE(parsePrecision(toString(p), "x"), p);
    QVERIFY(errorOf([] { parsePrecision("fp8", "/stages/0/precision"); }).contains("/stages/0/precision"));
  }
  void mixedPrecisionOnCpuIsAClearError() {
    checkPrecisionSupported(Precision::Fp32, torch::Device(torch::kCPU), "p");  // never throws
    const QString e = errorOf([] { checkPrecisionSupported(Precision::Bf16, torch::Device(torch::kCPU), "/p"); });
    QVERIFY2(e.contains("/p") && (e.contains("CUDA") || e.contains("LibTorch")), qPrintable(e));
    Gpt2 m(tiny());
    std::vector<uint16_t> tokens(4000, 5);
    TrainOptions o;
    o.precision = Precision::Fp16;
    o.seqLen = 16;
    const QString t = errorOf([&] { Trainer tr(m, o, {tokens.data(), 4000, "t"}, {}); });
    QVERIFY2(t.contains("fp16"), qPrintable(t));
  }
  void fusedAdamWWhereAvailable() {
    torch::manual_seed(1);
    auto a = torch::randn({8, 4}), b = torch::randn({4});
    auto a2 = a.clone(), b2 = b.clone();
    std::vector<std::pair<std::string, torch::Tensor>> p1{{"w", a}, {"b", b}}, p2{{"w", a2}, {"b", b2}};
    AdamWOptions fusedOpts;
    fusedOpts.fused = true;
    if (!compat::kHasFusedAdamW) {
      const QString e = errorOf([&] { AdamW opt(p2, fusedOpts); });
      QVERIFY2(e.contains("fused") && e.contains(QString::fromStdString(compat::torchVersion())), qPrintable(e));
      return;
    }
    AdamW plain(p1, {}), fused(p2, fusedOpts);
    for (int s = 0; s < 5; ++s) {
      const auto g1 = torch::randn({8, 4}), g2 = torch::randn({4});
      a.mutable_grad() = g1.clone();
      b.mutable_grad() = g2.clone();
      a2.mutable_grad() = g1.clone();
      b2.mutable_grad() = g2.clone();
      plain.step(1e-2);
      fused.step(1e-2);
    }
    for (auto [x, y] : {std::pair{a, a2}, std::pair{b, b2}}) {
      const auto r = test::allClose(y, x, 1e-6, 1e-5);
      QVERIFY2(r.ok, r.message.c_str());
    }
    // Same state format: the fused optimizer's tensors load into the plain one.
    QCOMPARE(fused.stateTensors().size(), plain.stateTensors().size());
  }
  void gradScalerSkipsAndBacksOff() {
    GradScalerOptions so;
    so.initScale = 1024;
    so.growthInterval = 2;
    GradScaler s(so);
    QCOMPARE(s.scale(torch::ones({})).item<double>(), 1024.0);
    std::vector<torch::Tensor> grads{torch::full({3}, 2048.0), torch::full({2}, 512.0)};
    QVERIFY(s.unscale(grads));
    QCOMPARE(grads[0][0].item<double>(), 2.0);  // powers of two: exact
    QCOMPARE(grads[1][1].item<double>(), 0.5);
    s.update(true);
    QCOMPARE(s.currentScale(), 1024.0);
    s.update(true);
    QCOMPARE(s.currentScale(), 2048.0);  // grown after 2 good steps
    std::vector<torch::Tensor> bad{torch::ones({2}), torch::tensor({1.0, std::numeric_limits<double>::infinity()})};
    QVERIFY(!s.unscale(bad));
    s.update(false);
    QCOMPARE(s.currentScale(), 1024.0);
    QCOMPARE(s.skippedSteps(), int64_t(1));
    std::vector<torch::Tensor> nan{torch::tensor({std::numeric_limits<double>::quiet_NaN()})};
    QVERIFY(!s.unscale(nan));
  }
  void activationCheckpointingMatchesPlainBackward_data() {
    QTest::addColumn<double>("dropout");
    QTest::newRow("no dropout") << 0.0;
    QTest::newRow("dropout 0.1 (RNG replayed)") << 0.1;
  }
  void activationCheckpointingMatchesPlainBackward() {
    QFETCH(double, dropout);
    torch::manual_seed(7);
    Gpt2 m(tiny(dropout));
    auto x = torch::randint(0, 97, {2, 24}, torch::kLong);
    torch::manual_seed(99);
    const auto [l0, g0] = lossAndGrads(m, x, false);
    torch::manual_seed(99);
    const auto [l1, g1] = lossAndGrads(m, x, true);
    QVERIFY2(std::fabs(l0 - l1) <= 1e-6 + 1e-5 * std::fabs(l0), qPrintable(QString::number(l1 - l0)));
    QCOMPARE(g0.size(), g1.size());
    for (size_t i = 0; i < g0.size(); ++i) {
      const auto r = test::allClose(g1[i], g0[i], 1e-6, 1e-5);
      QVERIFY2(r.ok, (std::to_string(i) + ": " + r.message).c_str());
    }
  }
  void staticPositionCacheMatchesEager() {
    torch::manual_seed(3);
    Gpt2 m(tiny());
    m->eval();
    torch::NoGradGuard g;
    const auto prompt = torch::randint(0, 97, {1, 5}, torch::kLong);
    KvCache eager = m->makeCache(1, 20, torch::TensorOptions());
    KvCache fixed = m->makeCache(1, 20, torch::TensorOptions());
    m->forward(prompt, &eager);
    m->forward(prompt, &fixed);
    m->useStaticPosition(fixed);
    auto tok = torch::tensor({{11L}});
    for (int i = 0; i < 10; ++i) {
      const auto a = m->forward(tok, &eager);
      const auto b = m->forward(tok, &fixed);
      const auto r = test::allClose(b, a, 1e-5, 1e-5);
      QVERIFY2(r.ok, ("step " + std::to_string(i) + ": " + r.message).c_str());
      tok = a.select(1, 0).argmax(-1, true);
    }
    QCOMPARE(fixed.position.item<int64_t>(), int64_t(15));
    QVERIFY(errorOf([&] {
              try {
                m->forward(prompt, &fixed);
              } catch (const RunError& e) {
                throw InputError("", e.what());
              }
            }).contains("one token per forward"));
  }
  void graphDecodeNeedsCuda() {
    Gpt2 m(tiny());
    const QString e = errorOf([&] { GraphDecoder d(m, 32); });
    QVERIFY2(e.contains("CUDA"), qPrintable(e));
  }
  void cpuTimerMeasuresWallTime() {
    DeviceTimer t(torch::Device(torch::kCPU));
    QVERIFY(!t.usesCudaEvents());
    t.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    t.stop();
    QVERIFY(t.seconds() >= 0.019);
    const auto s = timeRepeated(torch::Device(torch::kCPU), 1, 3, [] {});
    QCOMPARE(s.size(), size_t(3));
  }
  void perfCommandsRunOnCpu() {
    MatmulPerfOptions mo;
    mo.device = "cpu";
    mo.dtype = "fp32";
    mo.sizes = {64, 128};
    mo.warmup = 1;
    mo.repeats = 3;
    const auto mm = runMatmulPerf(mo);
    QCOMPARE(mm.rows.size(), size_t(2));
    QVERIFY(mm.summary["peak_tflops"].get<double>() > 0);

    TrainPerfOptions to;
    to.device = "cpu";
    to.precision = "fp32";
    to.attention = "math";
    to.model = {2, 2, 32, 97, 64};
    to.batchSize = 2;
    to.seqLen = 16;
    to.warmup = 1;
    to.repeats = 3;
    to.fusedOptimizer = compat::kHasFusedAdamW;
    const auto tr = runTrainPerf(to);
    QCOMPARE(tr.rows.size(), size_t(1));
    const auto& row = tr.rows[0];
    QCOMPARE(row.metrics[1].samples.size(), size_t(3));
    QVERIFY(row.metrics[1].samples[0] > 0);
    const double mfu = row.values["mfu_measured_peak_pct"].get<double>();
    QVERIFY(mfu > 0 && mfu <= 100.0);
    to.precision = "bf16";
    QVERIFY(errorOf([&] { runTrainPerf(to); }).contains("bf16"));

    DecodePerfOptions d;
    d.device = "cpu";
    d.dtype = "fp32";
    d.attention = "math";
    d.model = {2, 2, 32, 97, 64};
    d.promptLength = 4;
    d.newTokens = 8;
    d.warmup = 1;
    d.repeats = 2;
    const auto dr = runDecodePerf(d);
    QCOMPARE(dr.rows.size(), size_t(1));
    QVERIFY(!dr.warnings.empty());
    QVERIFY(dr.rows[0].metrics[0].samples[0] > 0);
  }
};

QTEST_APPLESS_MAIN(TestAmp)
#include "test_amp.moc"
