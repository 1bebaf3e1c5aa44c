// The training loop and evaluator: same seed => same losses; checkpoint at step k,
// reload, continue => losses bit-identical to the uninterrupted run (CPU); perplexity
// independent of batch size (1e-5 relative, fp32); strided windows score every token
// once; the schedule's shape.
#include "core/bench/evaluator.h"
#include "core/train/checkpoint.h"
#include "core/train/lr_schedule.h"
#include "core/train/trainer.h"
#include "tests/support/torch_support.h"

#include <QTemporaryDir>
#include <QtTest>

using namespace wb;

namespace {

// dropout on: resume must restore the RNG
Gpt2Config tinyConfig() {
  return test::tinyConfig({.dropout = 0.1});
}

// A learnable stream: a repeating phrase with some noise tokens.
std::vector<uint16_t> makeTokens(int64_t n, uint64_t seed) {
  std::vector<uint16_t> t(static_cast<size_t>(n));
  uint64_t s = seed;
  for (int64_t i = 0; i < n; ++i) {
    s = splitmix64(s);
    t[static_cast<size_t>(i)] = (s % 10 == 0) ? static_cast<uint16_t>(s % 64) : static_cast<uint16_t>((i * 7) % 23);
  }
  return t;
}

TrainOptions options() {
  TrainOptions o;
  o.steps = 12;
  o.batchSize = 4;
  o.gradAccum = 2;
  o.seqLen = 16;
  o.lr = 3e-3;
  o.minLr = 3e-4;
  o.warmupSteps = 3;
  o.evalEvery = 4;
  o.evalWindows = 8;
  o.seed = 42;
  return o;
}

Gpt2 freshModel() {
  torch::manual_seed(5);
  return Gpt2(tinyConfig());
}

}  // namespace

class TestTrainer : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase() { torch::set_num_threads(1); }

  void sameSeedSameLosses() {
    const auto train = makeTokens(5000, 1), val = makeTokens(600, 2);
    CancelToken cancel;
    torch::manual_seed(100);
    Trainer a(freshModel(), options(), {train.data(), 5000, "train"}, {val.data(), 600, "val"});
    torch::manual_seed(100);
    a.run({}, cancel);
    Trainer b(freshModel(), options(), {train.data(), 5000, "train"}, {val.data(), 600, "val"});
    torch::manual_seed(100);
    b.run({}, cancel);
    QCOMPARE(a.losses().size(), size_t(12));
    QCOMPARE(a.losses(), b.losses());
    QVERIFY(a.losses().back() < a.losses().front());  // it learns the phrase
  }

  void resumeIsBitIdentical() {
    const auto train = makeTokens(5000, 3), val = makeTokens(600, 4);
    QTemporaryDir tmp;
    CancelToken cancel;
    auto o = options();
    o.checkpointEvery = 5;
    o.keepCheckpoints = 0;
    Trainer full(freshModel(), o, {train.data(), 5000, "train"}, {val.data(), 600, "val"});
    torch::manual_seed(7);
    full.run({}, cancel, tmp.path().toStdString());
    const auto ckpt = std::filesystem::path(tmp.path().toStdString()) / "step-00000005";
    QVERIFY(std::filesystem::exists(ckpt / "DONE"));
    QVERIFY(std::filesystem::exists(ckpt / "model.safetensors"));
    QCOMPARE(latestCheckpoint(tmp.path().toStdString())->filename().string(), std::string("step-00000012"));

    torch::manual_seed(999);  // a different global RNG state: resume must restore it
    Gpt2 other(tinyConfig());
    Trainer resumed(other, o, {train.data(), 5000, "train"}, {val.data(), 600, "val"});
    resumed.resumeFrom(ckpt);
    QCOMPARE(resumed.step(), int64_t(5));
    resumed.run({}, cancel);
    const std::vector<double> tail(full.losses().begin() + 5, full.losses().end());
    QCOMPARE(resumed.losses().size(), tail.size());
    for (size_t i = 0; i < tail.size(); ++i) QVERIFY(resumed.losses()[i] == tail[i]);
  }

  void incompleteCheckpointIsRefused() {
    QTemporaryDir tmp;
    const auto dir = std::filesystem::path(tmp.path().toStdString()) / "step-00000001";
    std::filesystem::create_directories(dir);
    Gpt2 m = freshModel();
    AdamW opt(trainableParameters(*m), {});
    bool threw = false;
    try {
      loadTrainingCheckpoint(dir, m, opt);
    } catch (const InputError& e) {
      threw = QString(e.what()).contains("no DONE marker");
    }
    QVERIFY(threw);
  }

  void perplexityIndependentOfBatchSize() {
    const auto val = makeTokens(3001, 9);
    Gpt2 m = freshModel();
    EvalOptions o;
    o.seqLen = 32;
    std::vector<double> losses;
    int64_t tokens = 0;
    for (int64_t bs : {1, 4, 16}) {
      o.batchSize = bs;
      const auto r = evaluate(m, val.data(), 3001, o);
      losses.push_back(r.loss);
      tokens = r.tokens;
    }
    QCOMPARE(tokens, int64_t(3000));  // every target once, the short last window included
    for (double l : losses)
      QVERIFY2(std::fabs(l - losses[0]) <= 1e-5 * std::fabs(losses[0]), qPrintable(QString::number(l, 'g', 17)));
  }

  void stridedWindowsScoreEachTokenOnce() {
    const auto val = makeTokens(1000, 11);
    Gpt2 m = freshModel();
    EvalOptions o;
    o.seqLen = 32;
    o.batchSize = 4;
    const auto plain = evaluate(m, val.data(), 1000, o);
    o.stride = 32;
    const auto sameAsPlain = evaluate(m, val.data(), 1000, o);
    QVERIFY(std::fabs(sameAsPlain.loss - plain.loss) <= 1e-6 * plain.loss);
    o.stride = 8;
    const auto strided = evaluate(m, val.data(), 1000, o);
    QCOMPARE(strided.tokens, int64_t(999));
    QVERIFY(strided.windows > plain.windows);
  }

  void schedule() {
    QVERIFY(std::fabs(warmupCosineLr(0, 100, 9, 1.0, 0.1) - 0.1) < 1e-12);
    QVERIFY(std::fabs(warmupCosineLr(9, 100, 9, 1.0, 0.1) - 1.0) < 1e-12);
    QVERIFY(std::fabs(warmupCosineLr(100, 100, 9, 1.0, 0.1) - 0.1) < 1e-12);
    QVERIFY(std::fabs(warmupCosineLr(54, 100, 8, 1.0, 0.0) - 0.5) < 1e-12);  // half-way
  }

  void cancelStopsWithinAStep() {
    const auto train = makeTokens(5000, 1), val = makeTokens(600, 2);
    CancelToken cancel;
    Trainer t(freshModel(), options(), {train.data(), 5000, "train"}, {val.data(), 600, "val"});
    TrainSink sink;
    sink.progress = [&](int64_t step, int64_t, double) {
      if (step == 3) cancel.cancel();
    };
    bool cancelled = false;
    try {
      t.run(sink, cancel);
    } catch (const Cancelled&) {
      cancelled = true;
    }
    QVERIFY(cancelled);
    QCOMPARE(t.losses().size(), size_t(3));
  }
};

QTEST_APPLESS_MAIN(TestTrainer)
#include "test_trainer.moc"
