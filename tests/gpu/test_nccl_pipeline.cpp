// Issue 8 on 2 GPUs over NCCL (skipped with fewer GPUs or without NCCL): a 2-stage
// pipeline (GPipe and 1F1B) and 2 data-parallel replicas give one GPU's loss and
// gradients on the same batch (fp32: max |a - b| <= 1e-4 * max |b| per tensor; the
// CUDA embedding backward accumulates with atomics, so bits differ run to run); bf16
// autocast pipeline steps track one GPU's bf16 steps (2e-2 relative per step, the
// bf16 rounding of differently shaped matmuls); cancel mid-pass ends every worker within
// 3 s through ncclCommAbort, and a stage error is reported instead of the abort.
#include "core/parallel/nccl_transport.h"
#include "core/parallel/pipeline_engine.h"
#include "tests/support/torch_support.h"

#include <QtTest>

#include <atomic>
#include <chrono>
#include <thread>

#ifdef WB_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

using namespace wb;
using Clock = std::chrono::steady_clock;

Q_DECLARE_METATYPE(wb::ScheduleKind)

namespace {

Gpt2Config small() {
  return test::tinyConfig({.vocab = 512, .positions = 128, .embd = 128, .layers = 4, .heads = 4});
}

Gpt2 seeded(uint64_t seed) {
  torch::manual_seed(seed);
  return Gpt2(small());
}

std::pair<torch::Tensor, torch::Tensor> batch(int64_t rows, int64_t t, uint64_t seed) {
  torch::manual_seed(seed);
  auto ids = torch::randint(0, 512, {rows, t + 1}, torch::kLong);
  return {ids.narrow(1, 0, t).contiguous(), ids.narrow(1, 1, t).contiguous()};
}

int gpuCount() {
#ifdef WB_WITH_CUDA
  return torch::cuda::is_available() ? static_cast<int>(c10::cuda::device_count()) : 0;
#else
  return 0;
#endif
}

torch::Device gpu(int i) { return {torch::kCUDA, static_cast<c10::DeviceIndex>(i)}; }

QString relError(const torch::Tensor& a, const torch::Tensor& b, double rel, const std::string& what) {
  const auto bc = b.to(torch::kCPU).to(torch::kFloat64), ac = a.to(torch::kCPU).to(torch::kFloat64);
  const double scale = std::max(bc.abs().max().item<double>(), 1e-30);
  const double err = (ac - bc).abs().max().item<double>();
  return err <= rel * scale ? QString()
                            : QString::fromStdString(what + ": max |a-b| " + std::to_string(err) + " > " +
                                                     std::to_string(rel) + " * " + std::to_string(scale));
}

PipelineOptions ncclOptions(int stages, int replicas, int64_t m, ScheduleKind kind) {
  PipelineOptions o;
  o.stages = stages;
  o.dataParallel = replicas;
  o.microBatches = m;
  o.schedule = kind;
  for (int r = 0; r < stages * replicas; ++r) o.devices.push_back(gpu(r));
#ifdef WB_HAVE_NCCL
  o.comm = ncclCommFactory(makeInMemoryRendezvous(std::chrono::seconds(60)), std::chrono::seconds(60));
#endif
  return o;
}

}  // namespace

class TestNcclPipeline : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void init() {
    if (!kHasNccl) QSKIP("built without NCCL");
    if (gpuCount() < 2) QSKIP("needs 2 GPUs");
  }

  void oneStepMatchesOneGpu_data() {
    QTest::addColumn<int>("stages");
    QTest::addColumn<int>("replicas");
    QTest::addColumn<ScheduleKind>("kind");
    QTest::newRow("pp2 gpipe") << 2 << 1 << ScheduleKind::GPipe;
    QTest::newRow("pp2 1f1b") << 2 << 1 << ScheduleKind::OneFOneB;
    QTest::newRow("dp2") << 1 << 2 << ScheduleKind::OneFOneB;
  }
  void oneStepMatchesOneGpu() {
    QFETCH(int, stages);
    QFETCH(int, replicas);
    QFETCH(ScheduleKind, kind);
    const int64_t m = 4;
    auto [x, y] = batch(8, 64, 3);
    Gpt2 ref = seeded(11);
    ref->to(gpu(0));
    ref->train();
    const auto loss = torch::nn::functional::cross_entropy(ref->forward(x.to(gpu(0))).reshape({-1, 512}),
                                                           y.to(gpu(0)).reshape({-1}));
    loss.backward();
    Gpt2 model = seeded(11);
    model->train();
    PipelineEngine engine(model, ncclOptions(stages, replicas, m / replicas, kind));
    QVERIFY(engine.backendName().starts_with("nccl"));
    CancelToken cancel;
    engine.zeroGrad();
    const PassResult r = engine.forwardBackward(x, y, static_cast<double>(m / replicas), cancel);
    engine.syncTiedGradients(cancel);
    const double want = loss.item<double>();
    qInfo("loss %.6f vs one GPU %.6f; bubble %.3f (theory %.3f)", r.loss, want, r.bubble, r.theoreticalBubble);
    QVERIFY2(std::abs(r.loss - want) <= 1e-5 * want, qPrintable(QString("loss %1 vs %2").arg(r.loss).arg(want)));
    auto refParams = ref->named_parameters();
    for (int rep = 0; rep < replicas; ++rep)
      for (auto& item : engine.replicaModel(rep)->named_parameters()) {
        const QString err = relError(item.value().grad(), refParams[item.key()].grad(), 1e-4, item.key());
        QVERIFY2(err.isEmpty(), qPrintable(err));
      }
    for (const auto& t : r.timing) QVERIFY(t.forwardS > 0 && t.backwardS > 0);
  }

  // bf16 autocast in every stage worker: the pipeline's losses over a few AdamW steps
  // follow one GPU's bf16 losses.
  void bf16StepsTrackOneGpu() {
    auto run = [](int stages) {
      Gpt2 model = seeded(7);
      model->train();
      PipelineOptions o = ncclOptions(stages, 1, 4, ScheduleKind::OneFOneB);
      if (stages == 1) {
        o.devices = {gpu(0)};
        o.comm = nullptr;
      }
      o.precision = Precision::Bf16;
      PipelineEngine engine(model, o);
      CancelToken cancel;
      std::vector<double> losses;
      for (int step = 0; step < 5; ++step) {
        auto [x, y] = batch(8, 64, 100 + static_cast<uint64_t>(step));
        engine.zeroGrad();
        losses.push_back(engine.forwardBackward(x, y, 4.0, cancel).loss);
        engine.syncTiedGradients(cancel);
        engine.clipGradNorm(1.0, cancel);
        engine.step(1e-3, cancel);
      }
      return losses;
    };
    const auto one = run(1), two = run(2);
    for (size_t i = 0; i < one.size(); ++i) {
      qInfo("step %zu: one GPU %.5f, pipeline %.5f", i + 1, one[i], two[i]);
      QVERIFY2(std::abs(one[i] - two[i]) <= 2e-2 * one[i], qPrintable(QString("step %1").arg(i + 1)));
    }
  }

  // Cancel while both stages are mid-schedule: every worker ends within 3 s (receives
  // blocked in NCCL kernels end with ncclCommAbort) and the pass throws Cancelled.
  void cancelEndsEveryWorker() {
    auto [x, y] = batch(8, 64, 4);
    Gpt2 model = seeded(2);
    std::atomic<int> started{0};
    PipelineOptions o = ncclOptions(2, 1, 8, ScheduleKind::OneFOneB);
    o.beforeInstruction = [&](int stage, const Instruction&) {
      ++started;
      // Stage 1 is slow, so stage 0 ends up waiting inside ncclRecv on the device.
      if (stage == 1) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    };
    PipelineEngine engine(model, o);
    CancelToken cancel;
    std::atomic<bool> cancelled{false};
    Clock::time_point ended;
    std::thread runner([&] {
      try {
        engine.forwardBackward(x, y, 8.0, cancel);
      } catch (const Cancelled&) {
        cancelled = true;
      } catch (const std::exception& e) {
        qWarning("unexpected: %s", e.what());
      }
      ended = Clock::now();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    QVERIFY(started > 0);
    const auto at = Clock::now();
    cancel.cancel();
    runner.join();
    const double s = std::chrono::duration<double>(ended - at).count();
    qInfo("cancel to every worker joined: %.3f s", s);
    QVERIFY(cancelled);
    QVERIFY2(s < 3.0, qPrintable(QString("took %1 s").arg(s)));
  }
};

QTEST_APPLESS_MAIN(TestNcclPipeline)
#include "test_nccl_pipeline.moc"
