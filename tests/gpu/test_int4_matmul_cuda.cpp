// The int4 kernels (kernels/int4_matmul via dequantMatmul and int4MatmulCuda) against
// the CPU dequantizing reference of core/techniques/quantize.h on the same packed
// weights. Tolerance: error ||y - ref|| / ||ref|| at most 2x that of a same-precision
// baseline (cuBLAS matmul of x with the dequantized weight cast to x's dtype) plus 1e-4.
#include "core/errors.h"
#include "core/kernels_bridge/int4_matmul_cuda.h"
#include "core/techniques/quantize.h"
#include "tests/support/torch_support.h"

#include <QtTest>

using namespace wb;

namespace {
double relErr(const torch::Tensor& x, const torch::Tensor& ref) {
  const auto r = ref.to(torch::kCPU, torch::kFloat64), d = x.to(torch::kCPU, torch::kFloat64) - r;
  return d.norm().item<double>() / r.norm().item<double>();
}
}  // namespace

class TestInt4MatmulCuda : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void init() {
    if (!torch::cuda::is_available()) QSKIP("no CUDA device");
    if (!int4KernelBuilt()) QSKIP("built without CUDA kernels");
  }

  void matchesCpuReference_data() {
    QTest::addColumn<int>("m");
    QTest::addColumn<int>("group");
    QTest::addColumn<bool>("symmetric");
    QTest::addColumn<bool>("bf16");
    for (bool bf16 : {false, true})
      for (int g : {32, 64, 128})
        for (bool sym : {true, false})
          for (int m : {1, 3, 8, 33, 200}) {
            const auto name = QString("M%1 g%2 %3 %4").arg(m).arg(g).arg(sym ? "sym" : "asym").arg(bf16 ? "bf16" : "fp16");
            QTest::newRow(name.toUtf8().constData()) << m << g << sym << bf16;
          }
  }
  void matchesCpuReference() {
    QFETCH(int, m);
    QFETCH(int, group);
    QFETCH(bool, symmetric);
    QFETCH(bool, bf16);
    const auto dt = bf16 ? torch::kBFloat16 : torch::kHalf;
    const int64_t in = 768, out = 1000;  // out: not a multiple of any tile
    const auto w = torch::randn({in, out}) * 0.05;
    const auto q = quantizeWeight(w, QuantSpec{4, group, symmetric}, "w");
    const auto x = torch::randn({m, in}).to(dt);  // rounded once: every path sees it
    const auto bias = torch::randn({out});
    const auto ref = dequantMatmul(x.to(torch::kFloat32), q, bias);
    const auto dev = torch::Device(torch::kCUDA, 0);
    const auto y = dequantMatmul(x.to(dev), q, bias.to(dev));
    QVERIFY(y.scalar_type() == dt);
    QVERIFY(torch::isfinite(y).all().item<bool>());
    const auto base = torch::addmm(bias.to(dev, dt), x.to(dev), dequantize(q).to(dev, dt));
    const double eOurs = relErr(y, ref), eBase = relErr(base, ref);
    const auto msg = "kernel " + std::to_string(eOurs) + " vs baseline " + std::to_string(eBase);
    QVERIFY2(eOurs <= 2.0 * eBase + 1e-4, msg.c_str());
  }

  // The GEMV (M <= 8) and the GEMM must agree with each other on the same small input
  // (both fp32-accumulated; 2e-3 relative covers their different rounding).
  void gemvAndGemmAgree() {
    const auto dev = torch::Device(torch::kCUDA, 0);
    const auto q = quantizeWeight(torch::randn({1024, 512}) * 0.05, QuantSpec{4, 128, true}, "w");
    const auto x = torch::randn({4, 1024}, torch::TensorOptions().device(dev).dtype(torch::kHalf));
    const auto packed = q.packed.to(dev), scales = q.scales.to(dev);
    const auto a = int4MatmulCuda(x, packed, scales, {}, {}, 128, Int4Kernel::Gemv);
    const auto b = int4MatmulCuda(x, packed, scales, {}, {}, 128, Int4Kernel::Gemm);
    const double e = relErr(a, b);
    QVERIFY2(e <= 2e-3, std::to_string(e).c_str());
  }

  void rejectsBadInput() {
    const auto dev = torch::Device(torch::kCUDA, 0);
    const auto q = quantizeWeight(torch::randn({256, 64}), QuantSpec{4, 64, true}, "w");
    const auto x = torch::randn({2, 128}, torch::TensorOptions().device(dev).dtype(torch::kHalf));  // K mismatch
    QVERIFY_THROWS_EXCEPTION(InputError, int4MatmulCuda(x, q.packed.to(dev), q.scales.to(dev), {}, {}, 64));
    const auto xCpu = torch::randn({2, 256}).to(torch::kHalf);
    QVERIFY_THROWS_EXCEPTION(InputError, int4MatmulCuda(xCpu, q.packed, q.scales, {}, {}, 64));
  }
};

QTEST_APPLESS_MAIN(TestInt4MatmulCuda)
#include "test_int4_matmul_cuda.moc"
