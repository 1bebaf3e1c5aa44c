// Pruning (issue 6): magnitude and Wanda 50% leave exactly 50% zeros per targeted tensor
// (±1), also after fine-tuning steps with the masks re-applied; 2:4 (by |w| or Wanda
// score) keeps exactly 2 non-zeros in every group of 4 inputs; removing k heads or k MLP
// neurons gives a smaller model whose logits equal the masked model's within 1e-5 abs +
// 1e-5 rel (fp32), with and without KV cache; Wanda's activation norms equal a manual
// computation within 1e-5 rel.
#include <QTemporaryDir>

#include "core/io/hf_checkpoint.h"
#include "core/model/model_loader.h"
#include "core/techniques/prune.h"
#include "core/techniques/prune_structured.h"
#include "core/techniques/prune_wanda.h"
#include "core/train/trainer.h"
#include "tests/support/torch_support.h"

#include <QtTest>

using namespace wb;

namespace {

Gpt2Config tinyConfig() {
  return test::tinyConfig({.heads = 4});
}

Gpt2 freshModel(uint64_t seed = 5) {
  torch::manual_seed(seed);
  return Gpt2(tinyConfig());
}

std::vector<uint16_t> makeTokens(int64_t n) {
  std::vector<uint16_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<uint16_t>((i * 7 + i / 13) % 64);
  return t;
}

int64_t zeros(const torch::Tensor& t) { return (t == 0).sum().item<int64_t>(); }

}  // namespace

class TestPrune : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase() { torch::set_num_threads(1); }

  void magnitudeHalfStaysHalfThroughFinetuning() {
    Gpt2 model = freshModel();
    const auto& modules = prunableModules();
    PruneMasks masks = magnitudePrune(model, modules, 0.5, PruneScope::PerTensor);
    QCOMPARE(masks.size(), size_t(8));  // 4 modules x 2 layers
    auto check = [&](const char* when) {
      for (const auto& [name, w] : selectWeights(model, modules)) {
        const int64_t expected = w.numel() / 2;
        if (std::llabs(zeros(w) - expected) > 1)
          QFAIL(qPrintable(QString("%1 %2: %3 zeros, expected %4 ± 1").arg(when, name.c_str())
                               .arg(zeros(w)).arg(expected)));
      }
    };
    check("after pruning");
    // The kept weights are the large ones: every survivor >= every pruned |w| per tensor.
    const auto train = makeTokens(4000), val = makeTokens(600);
    TrainOptions o;
    o.steps = 4;
    o.batchSize = 4;
    o.seqLen = 16;
    o.lr = 1e-2;
    o.warmupSteps = 0;
    o.evalEvery = 0;
    o.evalWindows = 2;
    int64_t hookCalls = 0;
    TrainHooks hooks;
    hooks.afterStep = [&](int64_t) {
      ++hookCalls;
      masks.apply();
    };
    Trainer trainer(model, o, {train.data(), 4000, "train"}, {val.data(), 600, "val"}, hooks);
    trainer.run({}, CancelToken{});
    QCOMPARE(hookCalls, int64_t(4));
    check("after fine-tuning");
  }

  void withoutMasksWeightsGrowBack() {
    // Guards the test above: fine-tuning without the hook does refill pruned weights.
    Gpt2 model = freshModel();
    magnitudePrune(model, {"mlp.c_fc"}, 0.5, PruneScope::PerTensor);
    const auto train = makeTokens(4000), val = makeTokens(600);
    TrainOptions o;
    o.steps = 2;
    o.batchSize = 4;
    o.seqLen = 16;
    o.warmupSteps = 0;
    o.evalEvery = 0;
    o.evalWindows = 2;
    Trainer trainer(model, o, {train.data(), 4000, "train"}, {val.data(), 600, "val"});
    trainer.run({}, CancelToken{});
    const auto w = selectWeights(model, {"mlp.c_fc"}).front().second;
    QVERIFY(zeros(w) < w.numel() / 4);
  }

  void globalMagnitudeCountsOverAll() {
    Gpt2 model = freshModel();
    magnitudePrune(model, prunableModules(), 0.3, PruneScope::Global);
    const auto report = sparsityReport(model, prunableModules());
    const auto& total = report.back();
    QCOMPARE(total.name, std::string("total"));
    QCOMPARE(total.zeros, static_cast<int64_t>(std::llround(0.3 * static_cast<double>(total.numel))));
  }

  void twoFourKeepsTwoPerGroup() {
    Gpt2 model = freshModel();
    const auto orig = selectWeights(model, {"mlp.c_proj"}).front().second.detach().clone();
    nmPrune(model, prunableModules(), 2, 4);
    for (const auto& [name, w] : selectWeights(model, prunableModules())) {
      const auto groups = (w != 0).t().reshape({w.size(1), w.size(0) / 4, 4}).sum(-1);
      QVERIFY2((groups == 2).all().item<bool>(), name.c_str());
    }
    // The two kept are the two largest |w| of their group.
    const auto w = selectWeights(model, {"mlp.c_proj"}).front().second;
    const auto absG = orig.abs().t().reshape({w.size(1), -1, 4});
    const auto kept = (w != 0).t().reshape({w.size(1), -1, 4});
    const auto inf = std::numeric_limits<float>::infinity();
    const auto keptMin = torch::where(kept, absG, torch::full_like(absG, inf)).amin(-1);
    const auto prunedMax = torch::where(kept, torch::full_like(absG, -inf), absG).amax(-1);
    QVERIFY((keptMin >= prunedMax).all().item<bool>());
  }

  void headPruningMatchesMasked_data() {
    QTest::addColumn<int>("k");
    QTest::newRow("k=1") << 1;
    QTest::newRow("k=2") << 2;
    QTest::newRow("k=3") << 3;
  }
  void headPruningMatchesMasked() {
    QFETCH(int, k);
    torch::NoGradGuard noGrad;
    Gpt2 model = freshModel(11);
    const auto heads = leastImportantHeads(model, k);
    Gpt2 masked = copyModel(model, torch::kFloat32, torch::kCPU);
    maskHeads(masked, heads);
    const int64_t before = model->parameterCount();
    removeHeads(model, heads);
    model->eval();
    const auto c = tinyConfig();
    const int64_t removed = c.nLayer * k * c.headDim() * (3 * c.nEmbd + 3 + c.nEmbd);
    QCOMPARE(model->parameterCount(), before - removed);
    for (size_t l = 0; l < 2; ++l)
      QCOMPARE(model->transformer->h[l]->as<Gpt2Block>()->attn->headCount(), int64_t(4 - k));

    auto ids = torch::randint(64, {2, 19}, torch::kLong);
    const auto a = model->forward(ids), b = masked->forward(ids);
    const auto r = test::allClose(a, b, 1e-5, 1e-5);
    QVERIFY2(r.ok, r.message.c_str());
    // Incremental decoding through the (smaller) KV cache agrees too.
    auto cache = model->makeCache(2, 32, torch::TensorOptions());
    auto first = model->forward(ids.narrow(1, 0, 12), &cache);
    auto rest = model->forward(ids.narrow(1, 12, 7), &cache);
    const auto r2 = test::allClose(torch::cat({first, rest}, 1), b, 1e-5, 1e-5);
    QVERIFY2(r2.ok, r2.message.c_str());
  }

  void importanceRanksWeakHeadsFirst() {
    Gpt2 model = freshModel(3);
    {
      torch::NoGradGuard noGrad;
      auto attn = model->transformer->h[0]->as<Gpt2Block>()->attn;
      attn->c_proj->weight.narrow(0, 2 * 8, 8).mul_(0.01);  // head 2 of layer 0 nearly silent
      for (int part = 0; part < 3; ++part) attn->c_attn->weight.narrow(1, part * 32 + 16, 8).mul_(0.01);
    }
    QCOMPARE(leastImportantHeads(model, 1)[0], std::vector<int64_t>{2});
  }
  void neuronPruningMatchesMasked_data() {
    QTest::addColumn<int>("k");
    QTest::newRow("k=1") << 1;
    QTest::newRow("k=37") << 37;
    QTest::newRow("k=127") << 127;
  }
  void neuronPruningMatchesMasked() {
    QFETCH(int, k);
    torch::NoGradGuard noGrad;
    Gpt2 model = freshModel(13);
    const auto neurons = leastImportantNeurons(model, k);
    QCOMPARE(neurons[0].size(), size_t(k));
    Gpt2 masked = copyModel(model, torch::kFloat32, torch::kCPU);
    maskNeurons(masked, neurons);
    const int64_t before = model->parameterCount();
    removeNeurons(model, neurons);
    model->eval();
    const auto c = tinyConfig();
    // Each neuron owns a c_fc column (n_embd + 1 bias) and a c_proj row (n_embd).
    QCOMPARE(model->parameterCount(), before - c.nLayer * k * (2 * c.nEmbd + 1));
    QCOMPARE(model->config().nInner, c.innerDim() - k);  // the config shrank too
    for (size_t l = 0; l < 2; ++l)
      QCOMPARE(model->transformer->h[l]->as<Gpt2Block>()->mlp->innerCount(), c.innerDim() - k);

    auto ids = torch::randint(64, {2, 19}, torch::kLong);
    const auto a = model->forward(ids), b = masked->forward(ids);
    const auto r = test::allClose(a, b, 1e-5, 1e-5);
    QVERIFY2(r.ok, r.message.c_str());
    auto cache = model->makeCache(2, 32, torch::TensorOptions());
    auto first = model->forward(ids.narrow(1, 0, 12), &cache);
    auto rest = model->forward(ids.narrow(1, 12, 7), &cache);
    const auto r2 = test::allClose(torch::cat({first, rest}, 1), b, 1e-5, 1e-5);
    QVERIFY2(r2.ok, r2.message.c_str());
    // The shrunken model is a plain HF GPT-2 again: save, load, same logits (exactly).
    QTemporaryDir tmp;
    const std::filesystem::path dir = tmp.path().toStdString();
    saveHfCheckpoint(*model, model->config().toJson(), dir);
    Gpt2 back = loadModelFolder(dir);
    back->eval();
    QVERIFY(torch::equal(back->forward(ids), a));
    // The masked model is not simply equal to the original (the test can fail).
    Gpt2 orig = freshModel(13);
    orig->eval();
    QVERIFY(!torch::allclose(orig->forward(ids), b, 1e-5, 1e-5));
  }

  void neuronImportanceIsTheProductOfNorms() {
    Gpt2 model = freshModel(3);
    {
      torch::NoGradGuard noGrad;
      auto mlp = model->transformer->h[1]->as<Gpt2Block>()->mlp;
      mlp->c_proj->weight.select(0, 40).mul_(1e-3);  // neuron 40 of layer 1: silent output
      mlp->c_fc->weight.select(1, 41).mul_(50.0);   // neuron 41: loud input, same output
    }
    const auto pick = leastImportantNeurons(model, 1);
    QCOMPARE(pick[1], std::vector<int64_t>{40});
  }

  void wandaNormsMatchManual() {
    torch::NoGradGuard noGrad;
    Gpt2 model = freshModel(21);
    const auto train = makeTokens(4000);
    const auto batches = calibrationBatches(train.data(), 4000, 16, 3, 2, 99);
    QCOMPARE(batches.size(), size_t(2));
    QCOMPARE(batches[0].sizes(), (torch::IntArrayRef{3, 16}));
    const auto norms = inputNorms(model, {"mlp.c_fc", "attn.c_attn"}, batches);
    QCOMPARE(norms.size(), size_t(4));
    // Manual: the input of layer 0's c_fc is ln_2(x + attn(ln_1(x))).
    model->eval();
    auto block = model->transformer->h[0]->as<Gpt2Block>();
    torch::Tensor sumSq = torch::zeros({32}, torch::kDouble), sumSqAttn = torch::zeros({32}, torch::kDouble);
    for (const auto& ids : batches) {
      auto pos = torch::arange(16, torch::kLong);
      auto x = model->transformer->wte->forward(ids) + model->transformer->wpe->forward(pos).unsqueeze(0);
      auto a = block->ln_1->forward(x);
      sumSqAttn += a.reshape({-1, 32}).to(torch::kDouble).pow(2).sum(0);
      auto h = x + block->attn->forward(a, nullptr, AttentionBackend::Math);
      sumSq += block->ln_2->forward(h).reshape({-1, 32}).to(torch::kDouble).pow(2).sum(0);
    }
    auto r = test::allClose(norms.at("transformer.h.0.mlp.c_fc.weight"), sumSq.sqrt().to(torch::kFloat32), 0, 1e-5);
    QVERIFY2(r.ok, r.message.c_str());
    r = test::allClose(norms.at("transformer.h.0.attn.c_attn.weight"), sumSqAttn.sqrt().to(torch::kFloat32), 0, 1e-5);
    QVERIFY2(r.ok, r.message.c_str());
    // Recording adapters are gone afterwards.
    QVERIFY(!block->mlp->c_fc->adapter);
  }

  void wandaKeepsLoudChannels() {
    // Row 3 of every c_fc weight is small (|w| = 0.1, others 1): magnitude pruning drops
    // it everywhere, Wanda keeps it because its input channel is 100x louder.
    Gpt2 model = freshModel(8);
    WeightScores scores;
    std::map<std::string, torch::Tensor> norms;
    {
      torch::NoGradGuard noGrad;
      for (const auto& [name, w] : selectWeights(model, {"mlp.c_fc"})) {
        w.copy_(torch::sign(torch::randn_like(w)));
        w.select(0, 3).mul_(0.1);
        auto n = torch::ones({w.size(0)});
        n[3] = 100.0;
        norms[name] = n;
      }
    }
    Gpt2 byMagnitude = copyModel(model, torch::kFloat32, torch::kCPU);
    magnitudePrune(byMagnitude, {"mlp.c_fc"}, 0.5, PruneScope::PerOutput);
    scores = wandaScores(model, {"mlp.c_fc"}, norms);
    magnitudePrune(model, {"mlp.c_fc"}, 0.5, PruneScope::PerOutput, &scores);
    for (const auto& [name, w] : selectWeights(model, {"mlp.c_fc"})) {
      QVERIFY((w.select(0, 3) != 0).all().item<bool>());
      // Exactly half of every output column, so exactly half of the tensor.
      QVERIFY(((w == 0).sum(0) == w.size(0) / 2).all().item<bool>());
      QCOMPARE(zeros(w), w.numel() / 2);
    }
    for (const auto& [name, w] : selectWeights(byMagnitude, {"mlp.c_fc"}))
      QVERIFY((w.select(0, 3) == 0).all().item<bool>());
  }

  void wandaTwoFourAndFinetuning() {
    Gpt2 model = freshModel(9);
    const auto train = makeTokens(4000), val = makeTokens(600);
    const auto batches = calibrationBatches(train.data(), 4000, 16, 4, 2, 5);
    const auto scores = wandaScores(model, prunableModules(), inputNorms(model, prunableModules(), batches));
    PruneMasks masks = nmPrune(model, prunableModules(), 2, 4, &scores);
    auto check = [&](const char* when) {
      for (const auto& [name, w] : selectWeights(model, prunableModules())) {
        const auto groups = (w != 0).t().reshape({w.size(1), w.size(0) / 4, 4}).sum(-1);
        QVERIFY2((groups == 2).all().item<bool>(), (std::string(when) + " " + name).c_str());
      }
    };
    check("after pruning");
    TrainOptions o;
    o.steps = 3;
    o.batchSize = 4;
    o.seqLen = 16;
    o.lr = 1e-2;
    o.warmupSteps = 0;
    o.evalEvery = 0;
    o.evalWindows = 2;
    TrainHooks hooks;
    hooks.afterStep = [&masks](int64_t) { masks.apply(); };
    Trainer trainer(model, o, {train.data(), 4000, "train"}, {val.data(), 600, "val"}, hooks);
    trainer.run({}, CancelToken{});
    check("after fine-tuning");
  }

  void layerSparsitySumsTensors() {
    Gpt2 model = freshModel();
    magnitudePrune(model, {"mlp.c_fc"}, 0.25, PruneScope::PerTensor);
    const auto rows = sparsityReport(model, prunableModules());
    const auto layers = layerSparsity(rows);
    QCOMPARE(layers.size(), size_t(2));
    QCOMPARE(layers[1].name, std::string("layer 1"));
    const auto c = tinyConfig();
    const int64_t perLayer = c.nEmbd * 3 * c.nEmbd + c.nEmbd * c.nEmbd + 2 * c.nEmbd * c.innerDim();
    QCOMPARE(layers[0].numel, perLayer);
    QCOMPARE(layers[0].zeros, c.nEmbd * c.innerDim() / 4);
  }
};

QTEST_APPLESS_MAIN(TestPrune)
#include "test_prune.moc"
