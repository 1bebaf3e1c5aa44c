// Knowledge distillation (issue 5): with alpha = 1 the KD loss equals T^2 times a KL
// computed here by an independent double-precision loop; with alpha = 0 it equals the
// cross-entropy computed the same way (both to 1e-6 abs + 1e-6 rel, fp32 vs fp64);
// training leaves the teacher bitwise unchanged and grad-free while the student moves;
// the student factory copies teacher layers 0, 2, 4, ... exactly; the hidden-state
// cosine term equals 1 - cos computed by hand (1e-6 abs + 1e-6 rel) and adds to the
// total with its weight, with gradients reaching the student only.
#include "core/techniques/distill.h"
#include "tests/support/torch_support.h"

#include <cmath>

#include <QtTest>

using namespace wb;

namespace {

Gpt2Config tinyConfig(int64_t layers) {
  return test::tinyConfig({.positions = 32, .layers = layers});
}

std::vector<uint16_t> makeTokens(int64_t n) {
  std::vector<uint16_t> t(static_cast<size_t>(n));
  uint64_t s = 17;
  for (int64_t i = 0; i < n; ++i) {
    s = splitmix64(s);
    t[static_cast<size_t>(i)] = (s % 8 == 0) ? static_cast<uint16_t>(s % 64) : static_cast<uint16_t>((i * 5) % 29);
  }
  return t;
}

// log softmax of row r of a [N, V] double tensor, by hand.
std::vector<double> logSoftmaxRow(const torch::Tensor& z, int64_t r, double temperature) {
  const int64_t v = z.size(1);
  auto acc = z.accessor<double, 2>();
  double m = -INFINITY;
  for (int64_t j = 0; j < v; ++j) m = std::max(m, acc[r][j] / temperature);
  double sum = 0.0;
  for (int64_t j = 0; j < v; ++j) sum += std::exp(acc[r][j] / temperature - m);
  std::vector<double> out(static_cast<size_t>(v));
  for (int64_t j = 0; j < v; ++j) out[static_cast<size_t>(j)] = acc[r][j] / temperature - m - std::log(sum);
  return out;
}

bool close(double a, double ref) { return std::fabs(a - ref) <= 1e-6 + 1e-6 * std::fabs(ref); }

}  // namespace

class TestDistill : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase() { torch::set_num_threads(1); }

  void klMatchesIndependentFormula_data() {
    QTest::addColumn<double>("temperature");
    QTest::newRow("T=1") << 1.0;
    QTest::newRow("T=2") << 2.0;
    QTest::newRow("T=0.5") << 0.5;
  }
  void klMatchesIndependentFormula() {
    QFETCH(double, temperature);
    torch::manual_seed(3);
    const auto zs = torch::randn({2, 5, 11}) * 2.0;
    const auto zt = torch::randn({2, 5, 11}) * 2.0;
    const auto y = torch::randint(0, 11, {2, 5}, torch::kLong);
    const KdLoss l = distillationLoss(zs, zt, y, {temperature, 1.0});
    const auto s64 = zs.reshape({-1, 11}).to(torch::kFloat64), t64 = zt.reshape({-1, 11}).to(torch::kFloat64);
    double kl = 0.0;
    for (int64_t r = 0; r < 10; ++r) {
      const auto ls = logSoftmaxRow(s64, r, temperature), lt = logSoftmaxRow(t64, r, temperature);
      for (size_t j = 0; j < ls.size(); ++j) kl += std::exp(lt[j]) * (lt[j] - ls[j]);
    }
    const double ref = temperature * temperature * kl / 10.0;
    QVERIFY2(close(l.total.item<double>(), ref), qPrintable(QString("%1 vs %2").arg(l.total.item<double>()).arg(ref)));
    QVERIFY(close(l.kd.item<double>(), ref));
    QVERIFY(ref > 0.01);  // the two distributions really differ
  }

  void alphaZeroIsCrossEntropy() {
    torch::manual_seed(4);
    const auto zs = torch::randn({3, 4, 9}) * 3.0;
    const auto zt = torch::randn({3, 4, 9});
    const auto y = torch::randint(0, 9, {3, 4}, torch::kLong);
    const KdLoss l = distillationLoss(zs, zt, y, {2.0, 0.0});
    const auto s64 = zs.reshape({-1, 9}).to(torch::kFloat64);
    const auto yf = y.reshape({-1});
    double ce = 0.0;
    for (int64_t r = 0; r < 12; ++r) ce -= logSoftmaxRow(s64, r, 1.0)[static_cast<size_t>(yf[r].item<int64_t>())];
    ce /= 12.0;
    QVERIFY2(close(l.total.item<double>(), ce), qPrintable(QString("%1 vs %2").arg(l.total.item<double>()).arg(ce)));
    QVERIFY(close(l.ce.item<double>(), ce));
    // A mixture weighs the two parts (same tolerance).
    const KdLoss m = distillationLoss(zs, zt, y, {2.0, 0.25});
    QVERIFY(close(m.total.item<double>(), 0.25 * m.kd.item<double>() + 0.75 * ce));
  }

  void hiddenCosineMatchesIndependentFormula() {
    torch::manual_seed(6);
    const auto hs = torch::randn({2, 3, 7}), ht = torch::randn({2, 3, 7});
    const double got = hiddenCosineLoss(hs, ht).item<double>();
    const auto a = hs.reshape({-1, 7}).to(torch::kFloat64), b = ht.reshape({-1, 7}).to(torch::kFloat64);
    auto aa = a.accessor<double, 2>(), bb = b.accessor<double, 2>();
    double sum = 0.0;
    for (int64_t r = 0; r < 6; ++r) {
      double dot = 0, na = 0, nb = 0;
      for (int64_t j = 0; j < 7; ++j) {
        dot += aa[r][j] * bb[r][j];
        na += aa[r][j] * aa[r][j];
        nb += bb[r][j] * bb[r][j];
      }
      sum += 1.0 - dot / std::sqrt(na * nb);
    }
    QVERIFY2(close(got, sum / 6.0), qPrintable(QString("%1 vs %2").arg(got).arg(sum / 6.0)));
    QVERIFY(close(hiddenCosineLoss(hs, hs * 3.0).item<double>(), 0.0));  // same directions
    QVERIFY(close(hiddenCosineLoss(hs, -hs).item<double>(), 2.0));       // opposite
  }

  void hiddenTermInTrainingHooks() {
    torch::manual_seed(7);
    Gpt2 teacher(tinyConfig(4));
    Gpt2 student = makeStudent(teacher, {2, StudentInit::Random});
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : teacher->named_parameters()) before[p.key()] = p.value().clone();
    const auto x = torch::randint(0, 64, {2, 8}, torch::kLong), y = torch::randint(0, 64, {2, 8}, torch::kLong);
    FrozenTeacher frozen(teacher);
    KdOptions o{2.0, 0.5, 0.7};
    TrainHooks hooks = distillationHooks(student, frozen, o);
    QVERIFY(static_cast<bool>(hooks.forward));
    const auto logits = hooks.forward(x);
    QVERIFY(torch::equal(logits, student->forward(x)));  // the hook's forward is the model's
    const LossParts lp = hooks.loss(logits, x, y);
    std::map<std::string, double> parts;
    for (const auto& [name, t] : lp.parts) parts[name] = t.item<double>();
    QVERIFY(parts.count("cos_loss") && parts.at("cos_loss") > 0.01);
    const double expected = 0.5 * parts.at("kd_loss") + 0.5 * parts.at("ce_loss") + 0.7 * parts.at("cos_loss");
    QVERIFY2(std::fabs(lp.loss.item<double>() - expected) <= 1e-5 * std::fabs(expected),
             qPrintable(QString("%1 vs %2").arg(lp.loss.item<double>()).arg(expected)));
    // Independent check of the cosine part against the models' hidden states.
    torch::Tensor hs, ht;
    {
      torch::NoGradGuard g;
      hs = student->hidden(x);
      ht = teacher->hidden(x);
    }
    QVERIFY(close(parts.at("cos_loss"), hiddenCosineLoss(hs, ht).item<double>()));
    lp.loss.backward();
    QVERIFY(student->named_parameters()["transformer.h.0.attn.c_attn.weight"].grad().defined());
    for (const auto& p : teacher->named_parameters()) {
      QVERIFY(!p.value().grad().defined());
      QVERIFY(torch::equal(p.value(), before[p.key()]));
    }
    // Off by default: no forward hook, no cosine part.
    const TrainHooks plain = distillationHooks(student, frozen, {2.0, 0.5});
    QVERIFY(!plain.forward);
    // A student of another width cannot take the cosine term.
    Gpt2Config wide = tinyConfig(2);
    wide.nEmbd = 48;
    Gpt2 other(wide);
    bool threw = false;
    try {
      distillationHooks(other, frozen, o);
    } catch (const InputError&) {
      threw = true;
    }
    QVERIFY(threw);
  }

  void layerMap() {
    QCOMPARE(studentLayerMap(12, 6), (std::vector<int64_t>{0, 2, 4, 6, 8, 10}));
    QCOMPARE(studentLayerMap(4, 2), (std::vector<int64_t>{0, 2}));
    QCOMPARE(studentLayerMap(3, 3), (std::vector<int64_t>{0, 1, 2}));
  }

  void studentCopiesEveryOtherLayer() {
    torch::manual_seed(1);
    Gpt2 teacher(tinyConfig(4));
    Gpt2 student = makeStudent(teacher, {});
    QCOMPARE(student->config().nLayer, int64_t(2));
    const auto t = teacher->named_parameters();
    const auto s = student->named_parameters();
    QVERIFY(torch::equal(s["transformer.h.1.attn.c_attn.weight"], t["transformer.h.2.attn.c_attn.weight"]));
    QVERIFY(torch::equal(s["transformer.h.0.mlp.c_proj.weight"], t["transformer.h.0.mlp.c_proj.weight"]));
    QVERIFY(torch::equal(s["transformer.wte.weight"], t["transformer.wte.weight"]));
    QVERIFY(torch::equal(s["transformer.ln_f.weight"], t["transformer.ln_f.weight"]));
    QVERIFY(!torch::equal(s["transformer.h.1.attn.c_attn.weight"], t["transformer.h.1.attn.c_attn.weight"]));
    Gpt2 random = makeStudent(teacher, {3, StudentInit::Random});
    QCOMPARE(random->config().nLayer, int64_t(3));
    QVERIFY(!torch::equal(random->named_parameters()["transformer.wte.weight"], t["transformer.wte.weight"]));
    bool threw = false;
    try {
      makeStudent(teacher, {5, StudentInit::Random});
    } catch (const InputError&) {
      threw = true;
    }
    QVERIFY(threw);
  }

  void gradientsReachStudentOnly() {
    torch::manual_seed(2);
    Gpt2 teacher(tinyConfig(4));
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : teacher->named_parameters()) before[p.key()] = p.value().clone();
    Gpt2 student = makeStudent(teacher, {2, StudentInit::Random});
    const auto studentBefore = student->named_parameters()["transformer.h.0.attn.c_attn.weight"].clone();
    const auto train = makeTokens(4000), val = makeTokens(500);
    TrainOptions o;
    o.steps = 4;
    o.batchSize = 4;
    o.seqLen = 16;
    o.lr = 1e-2;
    o.warmupSteps = 1;
    o.evalEvery = 0;
    o.evalWindows = 4;
    std::vector<std::string> seen;
    {
      FrozenTeacher frozen(teacher);
      QVERIFY(!teacher->is_training());
      const LossFn kd = distillationObjective(frozen, {2.0, 0.5});
      int calls = 0;
      TrainHooks hooks;
      hooks.loss = [&](const torch::Tensor& logits, const torch::Tensor& x, const torch::Tensor& y) {
        // The batch arrives shifted: y is x moved left by one token.
        if (!torch::equal(y.narrow(1, 0, y.size(1) - 1), x.narrow(1, 1, x.size(1) - 1)))
          throw std::runtime_error("targets are not the next tokens");
        ++calls;
        return kd(logits, x, y);
      };
      TrainSink sink;
      sink.sample = [&](const std::string& s, int64_t, double) { seen.push_back(s); };
      Trainer trainer(student, o, {train.data(), 4000, "train"}, {val.data(), 500, "val"}, hooks);
      trainer.run(sink, CancelToken());
      QCOMPARE(calls, 4);
      for (const auto& p : teacher->parameters()) {
        QVERIFY(!p.requires_grad());
        QVERIFY(!p.grad().defined());
      }
    }
    for (const auto& p : teacher->named_parameters()) {
      QVERIFY2(torch::equal(p.value(), before[p.key()]), p.key().c_str());
      QVERIFY(p.value().requires_grad());  // restored when the FrozenTeacher went away
    }
    QVERIFY(!torch::equal(student->named_parameters()["transformer.h.0.attn.c_attn.weight"], studentBefore));
    for (const char* series : {"train/loss", "train/kd_loss", "train/ce_loss"})
      QVERIFY2(std::find(seen.begin(), seen.end(), series) != seen.end(), series);
  }
};

QTEST_APPLESS_MAIN(TestDistill)
#include "test_distill.moc"
