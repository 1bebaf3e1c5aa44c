// GPT-2 on CUDA against the same model on the CPU (fp32: logits within 1e-4 abs +
// 1e-4 rel, TF32 off by LibTorch's default), every attention backend against math on
// CUDA (1e-5), KV-cache greedy = no-cache greedy, and training steps that learn.
#include "core/bench/evaluator.h"
#include "core/model/generate.h"
#include "core/model/gpt2.h"
#include "core/model/model_loader.h"
#include "core/train/trainer.h"
#include "tests/support/torch_support.h"

#include <QtTest>

using namespace wb;

class TestGpt2Cuda : public QObject {
  Q_OBJECT
 private:
  // head dim 64, GPT-2's
  Gpt2Config config() {
    return test::tinyConfig({.vocab = 1000, .positions = 512, .embd = 128, .layers = 3});
  }
 private Q_SLOTS:
  void init() {
    if (!torch::cuda::is_available()) QSKIP("no CUDA device");
  }
  void cudaMatchesCpu() {
    torch::manual_seed(3);
    Gpt2 cpu(config());
    cpu->eval();
    Gpt2 gpu = copyModel(cpu, torch::kFloat32, torch::Device(torch::kCUDA, 0));
    torch::NoGradGuard g;
    auto ids = torch::randint(0, 1000, {2, 300}, torch::kLong);
    const auto ref = cpu->forward(ids);
    const auto out = gpu->forward(ids.cuda()).cpu();
    const auto r = test::allClose(out, ref, 1e-4, 1e-4);
    QVERIFY2(r.ok, r.message.c_str());
  }
  void backendsAgreeOnCuda() {
    const auto dev = torch::Device(torch::kCUDA, 0);
    for (int t : {1, 7, 64, 257}) {
      auto opts = torch::TensorOptions().device(dev);
      auto q = torch::randn({2, 12, t, 64}, opts);
      auto k = torch::randn({2, 12, t + 5, 64}, opts);
      auto v = torch::randn({2, 12, t + 5, 64}, opts);
      AttentionParams p;
      p.scale = 0.125;
      p.pastLength = 5;
      const auto ref = mathAttention(q, k, v, p, false);
      for (auto b : availableBackends(dev)) {
        const auto r = test::allClose(attention(q, k, v, p, b, false), ref, 1e-5, 1e-5);
        QVERIFY2(r.ok, (std::string(toString(b)) + " T=" + std::to_string(t) + ": " + r.message).c_str());
      }
    }
  }
  void kvCacheGreedyOnCuda() {
    torch::manual_seed(4);
    Gpt2 m(config());
    m->to(torch::Device(torch::kCUDA, 0));
    GenerateOptions o;
    o.temperature = 0;
    o.maxNewTokens = 64;
    const auto a = generate(m, {1, 2, 3, 4}, o);
    o.useKvCache = false;
    const auto b = generate(m, {1, 2, 3, 4}, o);
    QCOMPARE(a.tokens, b.tokens);
  }
  void trainsOnCuda() {
    torch::manual_seed(5);
    Gpt2 m(config());
    m->to(torch::Device(torch::kCUDA, 0));
    std::vector<uint16_t> tokens(20000);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>((i * 7) % 31);
    TrainOptions o;
    o.steps = 30;
    o.batchSize = 8;
    o.seqLen = 64;
    o.lr = 3e-3;
    o.warmupSteps = 3;
    o.evalEvery = 0;
    o.evalWindows = 8;
    Trainer t(m, o, {tokens.data(), 18000, "train"}, {tokens.data() + 18000, 2000, "val"});
    CancelToken cancel;
    std::vector<double> peaks;
    TrainSink sink;
    sink.sample = [&](const std::string& s, int64_t, double v) {
      if (s == "mem/cuda_peak_mb") peaks.push_back(v);
    };
    t.run(sink, cancel);
    QVERIFY(t.losses().back() < 0.5 * t.losses().front());
    QVERIFY(!peaks.empty() && peaks.back() > 0.0);
  }
};

QTEST_APPLESS_MAIN(TestGpt2Cuda)
#include "test_gpt2_cuda.moc"
