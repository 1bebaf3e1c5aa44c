// Issue 7, the fused chunked LM head + cross-entropy (core/train/fused_lm_loss.h): its
// loss and the gradients of hidden and weight equal matmul + cross_entropy (fp32:
// |a - b| <= 1e-7 + 1e-5 |b|) for chunks that divide the rows, that do not, one row
// and one chunk, with ignored (-100) targets; every GPT-2 parameter gradient matches
// (tied and untied head); all-ignored gives NaN and zero gradients as cross_entropy;
// under no_grad only the loss; clear errors; Trainer with fused_lm_head_loss tracks the
// unfused loss curve (1e-4 rel per step, grad accumulation 2). On CUDA builds with a GPU
// also bf16 autocast: loss within 2^-8 rel of the unfused bf16 loss, gradient errors
// against an fp32 reference <= 2x the unfused bf16 ones.
#include "core/errors.h"
#include "core/train/fused_lm_loss.h"
#include "core/train/trainer.h"
#include "tests/support/torch_support.h"

#include <QtTest>

#include <cmath>

using namespace wb;

namespace {

constexpr double kAtol = 1e-7, kRtol = 1e-5;  // fp32 rule of this file

struct LossGrads {
  double loss = 0.0;
  torch::Tensor dHidden, dWeight;
};

// loss and d loss / d (hidden, weight), unfused (the reference) or fused.
LossGrads run(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets, bool fused,
              int64_t chunkRows = 4096) {
  auto h = hidden.detach().clone().requires_grad_(true);
  auto w = weight.detach().clone().requires_grad_(true);
  torch::Tensor loss;
  if (fused) {
    FusedLmLossOptions o;
    o.chunkRows = chunkRows;
    loss = fusedLmHeadLoss(h, w, targets, o);
  } else {
    const auto logits = torch::matmul(h, w.t());
    loss = torch::nn::functional::cross_entropy(logits.reshape({-1, w.size(0)}).to(torch::kFloat32),
                                                targets.reshape({-1}));
  }
  loss.backward();
  return {loss.item<double>(), h.grad(), w.grad()};
}

void checkClose(const torch::Tensor& a, const torch::Tensor& b, const std::string& what, double atol = kAtol,
                double rtol = kRtol) {
  const auto r = test::allClose(a, b, atol, rtol);
  QVERIFY2(r.ok, (what + ": " + r.message).c_str());
}

Gpt2Config tiny(bool tied) {
  Gpt2Config c;
  c.vocabSize = 97;
  c.nPositions = 64;
  c.nEmbd = 32;
  c.nLayer = 2;
  c.nHead = 2;
  c.residPdrop = c.embdPdrop = c.attnPdrop = 0.0;
  c.tieWordEmbeddings = tied;
  return c;
}

template <typename F>
QString inputErrorOf(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return QString::fromStdString(e.what()) + " | " + QString::fromStdString(e.hint());
  }
  return {};
}

std::vector<uint16_t> phraseTokens(int64_t n) {
  std::vector<uint16_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    t[static_cast<size_t>(i)] = static_cast<uint16_t>(i % 13 == 0 ? (i * 31) % 97 : (i * 7) % 29);
  return t;
}

}  // namespace

class TestFusedLmLoss : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase() { torch::set_num_threads(1); }

  void matchesUnfused_data() {
    QTest::addColumn<int>("chunkRows");
    QTest::addColumn<bool>("ignored");
    // 2 x 24 = 48 rows.
    QTest::newRow("one chunk") << 4096 << false;
    QTest::newRow("16 rows: divides 48") << 16 << false;
    QTest::newRow("7 rows: does not divide 48") << 7 << false;
    QTest::newRow("1 row per chunk") << 1 << false;
    QTest::newRow("7 rows, ignored targets") << 7 << true;
    QTest::newRow("one chunk, ignored targets") << 4096 << true;
  }
  void matchesUnfused() {
    QFETCH(int, chunkRows);
    QFETCH(bool, ignored);
    torch::manual_seed(11);
    const auto hidden = torch::randn({2, 24, 32});
    const auto weight = torch::randn({97, 32}) * 0.3;
    auto targets = torch::randint(0, 97, {2, 24}, torch::kLong);
    if (ignored) {
      // Every fifth target ignored, and rows 42-47 (the whole last chunk of 7 rows).
      targets.view({-1}).slice(0, 0, 48, 5).fill_(-100);
      targets.view({-1}).slice(0, 42, 48).fill_(-100);
    }
    const auto ref = run(hidden, weight, targets, false);
    const auto got = run(hidden, weight, targets, true, chunkRows);
    QVERIFY2(std::fabs(got.loss - ref.loss) <= kAtol + kRtol * std::fabs(ref.loss),
             qPrintable(QString("loss %1 vs %2").arg(got.loss, 0, 'g', 10).arg(ref.loss, 0, 'g', 10)));
    checkClose(got.dHidden, ref.dHidden, "d hidden");
    checkClose(got.dWeight, ref.dWeight, "d weight");
    if (ignored) {  // rows with ignored targets get no gradient at all
      const auto rows = got.dHidden.reshape({-1, 32});
      QCOMPARE(rows[45].abs().max().item<double>(), 0.0);
      QVERIFY(rows[41].abs().max().item<double>() > 0.0);
    }
  }

  void upstreamGradientScales() {
    torch::manual_seed(12);
    const auto hidden = torch::randn({10, 8}), weight = torch::randn({13, 8});
    const auto targets = torch::randint(0, 13, {10}, torch::kLong);
    auto h1 = hidden.clone().requires_grad_(true), h2 = hidden.clone().requires_grad_(true);
    FusedLmLossOptions o;
    o.chunkRows = 3;
    (fusedLmHeadLoss(h1, weight, targets, o) * -2.5).backward();
    (torch::nn::functional::cross_entropy(torch::matmul(h2, weight.t()), targets) * -2.5).backward();
    checkClose(h1.grad(), h2.grad(), "d hidden x -2.5");
  }

  void everyModelGradientMatches_data() {
    QTest::addColumn<bool>("tied");
    QTest::newRow("tied head (wte: embedding + head gradients)") << true;
    QTest::newRow("untied lm_head") << false;
  }
  void everyModelGradientMatches() {
    QFETCH(bool, tied);
    torch::manual_seed(3);
    Gpt2 m(tiny(tied));
    m->train();
    const auto x = torch::randint(0, 97, {3, 20}, torch::kLong);
    const auto y = torch::randint(0, 97, {3, 20}, torch::kLong);
    auto grads = [&](bool fused) {
      m->zero_grad();
      torch::Tensor loss;
      if (fused) {
        FusedLmLossOptions o;
        o.chunkRows = 7;  // 60 rows: 8 full chunks and one of 4
        loss = fusedLmHeadLoss(m->hidden(x), tied ? m->transformer->wte->weight : m->lmHeadWeight, y, o);
      } else {
        loss = torch::nn::functional::cross_entropy(m->forward(x).reshape({-1, 97}), y.reshape({-1}));
      }
      loss.backward();
      std::vector<std::pair<std::string, torch::Tensor>> out;
      for (auto& p : m->named_parameters()) out.emplace_back(p.key(), p.value().grad().clone());
      return std::pair{loss.item<double>(), out};
    };
    const auto [l0, g0] = grads(false);
    const auto [l1, g1] = grads(true);
    QVERIFY2(std::fabs(l1 - l0) <= kAtol + kRtol * std::fabs(l0), qPrintable(QString::number(l1 - l0)));
    QCOMPARE(g1.size(), g0.size());
    for (size_t i = 0; i < g0.size(); ++i) checkClose(g1[i].second, g0[i].second, g0[i].first);
  }

  void allIgnoredIsNanWithZeroGradients() {
    const auto hidden = torch::randn({4, 6}), weight = torch::randn({9, 6});
    const auto targets = torch::full({4}, -100, torch::kLong);
    const auto got = run(hidden, weight, targets, true, 3);
    const auto ref = run(hidden, weight, targets, false);
    QVERIFY(std::isnan(got.loss) && std::isnan(ref.loss));
    QCOMPARE(got.dHidden.abs().max().item<double>(), 0.0);
    QCOMPARE(got.dWeight.abs().max().item<double>(), 0.0);
  }

  void noGradGivesTheLossOnly() {
    torch::manual_seed(4);
    const auto hidden = torch::randn({5, 6}).requires_grad_(true), weight = torch::randn({9, 6});
    const auto targets = torch::randint(0, 9, {5}, torch::kLong);
    torch::NoGradGuard off;
    FusedLmLossOptions o;
    o.chunkRows = 2;
    const auto loss = fusedLmHeadLoss(hidden, weight, targets, o);
    QVERIFY(!loss.requires_grad());
    const double ref = torch::nn::functional::cross_entropy(torch::matmul(hidden, weight.t()), targets).item<double>();
    QVERIFY(std::fabs(loss.item<double>() - ref) <= kAtol + kRtol * std::fabs(ref));
  }

  void badInputsAreClearErrors() {
    const auto h = torch::randn({4, 6}), w = torch::randn({9, 6});
    QVERIFY(inputErrorOf([&] { fusedLmHeadLoss(h, torch::randn({9, 5}), torch::zeros({4}, torch::kLong)); })
                .contains("weight"));
    QVERIFY(inputErrorOf([&] { fusedLmHeadLoss(h, w, torch::zeros({5}, torch::kLong)); }).contains("targets"));
    QVERIFY(inputErrorOf([&] { fusedLmHeadLoss(h, w, torch::zeros({4}, torch::kInt)); }).contains("int64"));
    FusedLmLossOptions o;
    o.chunkRows = 0;
    QVERIFY(inputErrorOf([&] { fusedLmHeadLoss(h, w, torch::zeros({4}, torch::kLong), o); }).contains("chunk"));
    // The trainer refuses the fused loss where a custom objective replaces next-token CE.
    auto tokens = phraseTokens(3000);
    TrainOptions to;
    to.seqLen = 16;
    to.fusedLmHeadLoss = true;
    TrainHooks hooks;
    hooks.loss = [](const torch::Tensor& logits, const torch::Tensor&, const torch::Tensor&) {
      return LossParts{logits.mean(), {}};
    };
    const QString e = inputErrorOf([&] { Trainer t(Gpt2(tiny(true)), to, {tokens.data(), 3000, "t"}, {}, hooks); });
    QVERIFY2(e.contains("fused_lm_head_loss"), qPrintable(e));
  }

  void trainerTracksTheUnfusedLossCurve() {
    const auto train = phraseTokens(6000), val = phraseTokens(900);
    auto losses = [&](bool fused, double* evalLoss) {
      torch::manual_seed(21);
      Gpt2 m(tiny(true));
      TrainOptions o;
      o.steps = 10;
      o.batchSize = 4;
      o.gradAccum = 2;
      o.seqLen = 16;  // 64 rows per micro-batch; chunks of 24 leave 16
      o.lr = 3e-3;
      o.warmupSteps = 2;
      o.evalEvery = 0;
      o.evalWindows = 6;
      o.seed = 9;
      o.fusedLmHeadLoss = fused;
      o.lmHeadChunkRows = 24;
      Trainer t(m, o, {train.data(), 6000, "train"}, {val.data(), 900, "val"});
      CancelToken cancel;
      t.run({}, cancel);
      *evalLoss = t.lastEval()->loss;
      return t.losses();
    };
    double evalPlain = 0, evalFused = 0;
    const auto plain = losses(false, &evalPlain);
    const auto fused = losses(true, &evalFused);
    QCOMPARE(fused.size(), plain.size());
    for (size_t i = 0; i < plain.size(); ++i)
      QVERIFY2(std::fabs(fused[i] - plain[i]) <= 1e-4 * std::fabs(plain[i]),
               qPrintable(QString("step %1: %2 vs %3").arg(i + 1).arg(fused[i], 0, 'g', 9).arg(plain[i], 0, 'g', 9)));
    QVERIFY(plain.back() < plain.front());  // it learns, so the curves are not flat
    // The evaluator is untouched: it scores both trained models alike.
    QVERIFY2(std::fabs(evalFused - evalPlain) <= 1e-4 * std::fabs(evalPlain),
             qPrintable(QString("%1 vs %2").arg(evalFused).arg(evalPlain)));
  }

  void bf16AutocastOnCuda() {
    if (!compat::kHasAutocast || !compat::cudaAvailable()) QSKIP("needs LibTorch >= 2.4 with a CUDA device");
    const torch::Device cuda(torch::kCUDA, 0);
    torch::manual_seed(8);
    const auto hidden = torch::randn({4, 1000, 256}, torch::dtype(torch::kFloat32).device(cuda));
    const auto weight = (torch::randn({5000, 256}) * 0.05).to(cuda);
    const auto targets = torch::randint(0, 5000, {4, 1000}, torch::dtype(torch::kLong).device(cuda));
    const auto ref = run(hidden, weight, targets, false);  // fp32 reference
    LossGrads plain, fused;
    {
      compat::AutocastGuard bf16(torch::kCUDA, torch::kBFloat16);
      plain = run(hidden, weight, targets, false);
      fused = run(hidden, weight, targets, true, 1536);  // 4000 rows: 2 full chunks + 928
    }
    auto err = [](const torch::Tensor& a, const torch::Tensor& b) {
      return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>() /
             b.abs().max().item<double>();
    };
    // The scalar loss: within bf16's unit roundoff (2^-8 relative) of the unfused bf16
    // loss (a ratio of two single rounding errors would be a coin toss).
    QVERIFY2(std::fabs(fused.loss - plain.loss) <= std::ldexp(1.0, -8) * std::fabs(plain.loss),
             qPrintable(QString("loss %1 vs %2 (fp32 %3)").arg(fused.loss).arg(plain.loss).arg(ref.loss)));
    // Gradients (max error over all elements / max |reference|): at most twice the
    // unfused bf16 error against the fp32 reference, plus 1e-6 for an exact tie.
    for (auto [name, a, b, r] : {std::tuple{"d hidden", fused.dHidden, plain.dHidden, ref.dHidden},
                                 std::tuple{"d weight", fused.dWeight, plain.dWeight, ref.dWeight}}) {
      const double ef = err(a, r), ep = err(b, r);
      QVERIFY2(ef <= 2 * ep + 1e-6, qPrintable(QString("%1: fused %2 vs unfused %3").arg(QLatin1String(name)).arg(ef).arg(ep)));
      QVERIFY(a.scalar_type() == r.scalar_type());  // gradients in the parameters' dtype
    }
  }
};

QTEST_APPLESS_MAIN(TestFusedLmLoss)
#include "test_fused_lm_loss.moc"
