// The kernel wrappers in a build without the CUDA kernels (the CPU build): every call
// throws RunError "built without CUDA kernels", the perf driver too, and the flash
// backend on the CPU still runs the chunked reference (issue 7). Skipped where the
// kernels are built (tests/gpu covers them there).
#include "core/bench/attention_perf.h"
#include "core/errors.h"
#include "core/kernels_bridge/flash_attention_cuda.h"
#include "core/kernels_bridge/int4_matmul_cuda.h"
#include "core/model/attention.h"
#include "tests/support/torch_support.h"

#include <QtTest>

using namespace wb;

class TestKernelsBridge : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void withoutKernelsEveryCallSaysSo() {
    if (flashKernelBuilt() || int4KernelBuilt()) QSKIP("this build has the CUDA kernels");
    const auto t = torch::randn({1, 2, 4, 64}).to(torch::kHalf);
    auto expectNoKernels = [](const std::function<void()>& fn) {
      try {
        fn();
      } catch (const RunError& e) {
        return std::string(e.what()).find("built without CUDA kernels") != std::string::npos;
      }
      return false;
    };
    QVERIFY(expectNoKernels([&] { flashAttentionForward(t, t, t, 0.125, true); }));
    QVERIFY(expectNoKernels([&] { flashAttentionCuda(t, t, t, 0.125, true); }));
    QVERIFY(expectNoKernels([&] { int4MatmulCuda(t, t, t, {}, {}, 32); }));
    QVERIFY(expectNoKernels([&] { runAttentionPerf({}); }));
    std::string why;
    QVERIFY(!flashKernelSupports(t, t, t, true, &why));
    QCOMPARE(QString::fromStdString(why), QString("built without CUDA kernels"));
  }

  // Flash on the CPU = the chunked reference, equal to math within 1e-5 (fp32).
  void flashBackendOnCpuIsTheReference() {
    const auto q = torch::randn({2, 3, 9, 64}), k = torch::randn({2, 3, 12, 64}), v = torch::randn({2, 3, 12, 64});
    AttentionParams p;
    p.scale = 0.125;
    p.pastLength = 3;
    const auto r = test::allClose(attention(q, k, v, p, AttentionBackend::Flash, false),
                                  mathAttention(q, k, v, p, false), 1e-5, 1e-5);
    QVERIFY2(r.ok, r.message.c_str());
  }

  void flopsFollowTheFlashAttentionConvention() {
    QCOMPARE(attentionForwardFlops(16, 12, 1024, 64, false), 4.0 * 16 * 12 * 1024 * 1024 * 64);
    QCOMPARE(attentionForwardFlops(16, 12, 1024, 64, true), 2.0 * 16 * 12 * 1024 * 1024 * 64);
  }
};

QTEST_APPLESS_MAIN(TestKernelsBridge)
#include "test_kernels_bridge.moc"
