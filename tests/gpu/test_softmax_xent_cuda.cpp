// The softmax cross-entropy kernel (kernels/softmax_xent via softmaxXent) against its
// LibTorch reference (softmaxXentReference, fp32 log-softmax) on the same 16-bit logits,
// and its losses against fp64 math. Tolerances: row losses 1e-4 abs + 1e-5 rel; the
// gradient within two roundings of its dtype (rel 2^-7 bf16, 2^-10 fp16) + 1e-7 abs,
// since both sides round the same fp32 value once and differ only in exp's last bits.
#include "core/errors.h"
#include "core/kernels_bridge/softmax_xent_cuda.h"
#include "core/model/vocab_padding.h"
#include "core/train/softmax_xent.h"
#include "tests/support/torch_support.h"

#include <QtTest>

using namespace wb;

namespace {

const torch::Device kCuda(torch::kCUDA, 0);

struct Case {
  torch::Tensor logits, targets, valid;
  int64_t vocab;
};

// Logits ~ 3 N(0, 1) with zero padding columns (as the padded LM head gives), one row
// whose target dominates (p ~ 1: the gradient's cancellation case), every third row ignored.
Case makeCase(int64_t rows, int64_t vocab, int64_t ld, torch::ScalarType dt) {
  Case c;
  c.vocab = vocab;
  auto l = torch::randn({rows, ld}) * 3.0;
  if (ld > vocab) l.narrow(1, vocab, ld - vocab).zero_();
  c.targets = torch::randint(0, vocab, {rows}, torch::kLong);
  c.targets[0] = 0;
  c.targets[rows - 1] = vocab - 1;
  l[1][c.targets[1].item<int64_t>()] = 40.0;
  c.valid = (torch::arange(rows) % 3 != 2).to(torch::kFloat32);
  c.logits = l.to(kCuda, dt);
  c.targets = c.targets.to(kCuda);
  c.valid = c.valid.to(kCuda);
  return c;
}

void checkClose(const torch::Tensor& got, const torch::Tensor& want, double atol, double rtol, const char* what) {
  const auto g = got.to(torch::kCPU, torch::kFloat64), w = want.to(torch::kCPU, torch::kFloat64);
  const auto excess = ((g - w).abs() - (atol + rtol * w.abs())).max().item<double>();
  const auto maxErr = (g - w).abs().max().item<double>();
  QVERIFY2(excess <= 0.0, (std::string(what) + ": max |diff| " + std::to_string(maxErr)).c_str());
}

}  // namespace

class TestSoftmaxXentCuda : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void init() {
    if (!torch::cuda::is_available()) QSKIP("no CUDA device");
    if (!softmaxXentKernelBuilt()) QSKIP("built without CUDA kernels");
  }

  void matchesReference_data() {
    QTest::addColumn<int>("rows");
    QTest::addColumn<int>("vocab");
    QTest::addColumn<bool>("bf16");
    for (bool bf16 : {true, false}) {
      const std::string tag = bf16 ? " bf16" : " fp16";
      QTest::newRow(("gpt2 vocab" + tag).c_str()) << 300 << 50257 << bf16;
      QTest::newRow(("small vocab" + tag).c_str()) << 64 << 1000 << bf16;
      QTest::newRow(("largest row" + tag).c_str()) << 9 << 65536 << bf16;
      QTest::newRow(("one vector" + tag).c_str()) << 5 << 3 << bf16;
    }
  }
  void matchesReference() {
    QFETCH(int, rows);
    QFETCH(int, vocab);
    QFETCH(bool, bf16);
    const auto dt = bf16 ? torch::kBFloat16 : torch::kHalf;
    torch::manual_seed(rows + vocab);
    const Case c = makeCase(rows, vocab, paddedVocab(vocab), dt);
    QVERIFY(softmaxXentKernelFits(c.logits));
    const auto ref = softmaxXentReference(c.logits.clone(), c.targets, c.valid, c.vocab, true);
    const auto got = softmaxXent(c.logits.clone(), c.targets, c.valid, c.vocab, true, XentImpl::Kernel);
    checkClose(got.rowLoss, ref.rowLoss, 1e-4, 1e-5, "row loss vs reference");
    checkClose(got.grad, ref.grad, 1e-7, bf16 ? 1.0 / 128 : 1.0 / 1024, "gradient vs reference");

    // The losses against fp64 math on the same rounded logits.
    const auto l64 = c.logits.to(torch::kCPU, torch::kFloat64).narrow(1, 0, vocab);
    const auto ce = torch::log_softmax(l64, 1).gather(1, c.targets.cpu().unsqueeze(1)).squeeze(1).neg() *
                    c.valid.cpu().to(torch::kFloat64);
    checkClose(got.rowLoss, ce, 1e-4, 1e-5, "row loss vs fp64");
    // Padding columns exactly 0; each row sums to 1 - valid (softmax sums to 1).
    if (got.grad.size(1) > vocab)
      QCOMPARE(got.grad.narrow(1, vocab, got.grad.size(1) - vocab).abs().max().item<double>(), 0.0);
    const auto sums = got.grad.to(torch::kFloat64).sum(1).cpu();
    checkClose(sums, 1.0 - c.valid.cpu().to(torch::kFloat64), 2e-2, 0.0, "row sums");
  }

  void lossOnlyLeavesTheLogits() {
    const Case c = makeCase(40, 50257, 50304, torch::kBFloat16);
    const auto before = c.logits.clone();
    const auto got = softmaxXent(c.logits, c.targets, c.valid, c.vocab, false, XentImpl::Kernel);
    QVERIFY(!got.grad.defined());
    QVERIFY(torch::equal(c.logits, before));
    const auto ref = softmaxXentReference(before, c.targets, c.valid, c.vocab, false);
    checkClose(got.rowLoss, ref.rowLoss, 1e-4, 1e-5, "loss-only row loss");
  }

  void layoutsTheKernelCannotTakeFallBack() {
    // ld 1001 is no multiple of 8; fp32 logits are not 16-bit.
    for (const auto& [ld, dt] : {std::pair{int64_t{1001}, torch::kBFloat16}, std::pair{int64_t{1024}, torch::kFloat32}}) {
      const Case c = makeCase(16, 1000, ld, dt);
      QVERIFY(!softmaxXentKernelFits(c.logits));
      const auto ref = softmaxXentReference(c.logits.clone(), c.targets, c.valid, c.vocab, true);
      const auto got = softmaxXent(c.logits.clone(), c.targets, c.valid, c.vocab, true);  // Auto: the reference
      QVERIFY(torch::equal(got.grad, ref.grad));
      QVERIFY_THROWS_EXCEPTION(InputError,
                               softmaxXent(c.logits.clone(), c.targets, c.valid, c.vocab, true, XentImpl::Kernel));
    }
  }

  void badTargetsGiveNan() {
    Case c = makeCase(8, 1000, 1024, torch::kBFloat16);
    c.targets[3] = 1000;  // a padding column, not a token
    const auto got = softmaxXent(c.logits, c.targets, c.valid, c.vocab, false, XentImpl::Kernel);
    const auto loss = got.rowLoss.cpu();
    QVERIFY(std::isnan(loss[3].item<double>()));
    QVERIFY(torch::isfinite(loss.narrow(0, 0, 3)).all().item<bool>());
  }

  void shapeErrorsNameTheArgument() {
    const Case c = makeCase(8, 1000, 1024, torch::kBFloat16);
    try {
      softmaxXentCuda(c.logits, c.targets.narrow(0, 0, 7), c.valid, c.vocab, true);
      QFAIL("expected an InputError");
    } catch (const InputError& e) {
      QVERIFY2(std::string(e.what()).find("targets") != std::string::npos, e.what());
    }
    QVERIFY_THROWS_EXCEPTION(InputError, softmaxXentCuda(c.logits, c.targets, c.valid, 2000, true));
  }
};

QTEST_APPLESS_MAIN(TestSoftmaxXentCuda)
#include "test_softmax_xent_cuda.moc"
