// LoRA (issue 5): parameter counts (GPT-2 124M, r = 8 on c_attn: 294,912, counted
// without building the model); B = 0 leaves logits bitwise unchanged; merged and
// unmerged logits agree within 1e-5 abs (fp32); peft-format save -> load gives
// bitwise-identical logits, with peft's key names and [r, in] / [out, r] shapes;
// training through Trainer moves only A and B; on a real GPT-2 124M (random init) the
// injected adapter has exactly 294,912 parameters and 2,359,296 optimizer-state bytes.
#include "core/techniques/lora.h"

#include <fstream>

#include <QTemporaryDir>
#include <QtTest>

#include "core/io/safetensors.h"
#include "tests/support/torch_support.h"

using namespace wb;

namespace {

// dropout on: eval() must switch it off
Gpt2Config tinyConfig() {
  return test::tinyConfig({.positions = 32, .dropout = 0.1});
}

Gpt2 freshModel(uint64_t seed = 5) {
  torch::manual_seed(seed);
  Gpt2 m(tinyConfig());
  m->eval();
  return m;
}

torch::Tensor ids() {
  torch::manual_seed(11);
  return torch::randint(0, 64, {2, 12}, torch::kLong);
}

torch::Tensor logits(Gpt2& m) {
  torch::NoGradGuard g;
  return m->forward(ids());
}

// Non-zero B so the adapter changes the output.
void randomizeB(LoraModel& lora, uint64_t seed) {
  torch::NoGradGuard g;
  torch::manual_seed(seed);
  for (auto& [name, t] : lora.parameters())
    if (name.ends_with("lora_B")) t.normal_(0.0, 0.05);
}

std::vector<uint16_t> makeTokens(int64_t n) {
  std::vector<uint16_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<uint16_t>((i * 7) % 31);
  return t;
}

}  // namespace

class TestLora : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase() { torch::set_num_threads(1); }

  void parameterCounts() {
    const Gpt2Config gpt2;  // 124M defaults; nothing allocated
    QCOMPARE(loraParameterCount(gpt2, {"c_attn"}, 8), int64_t(294'912));
    // 8 * 12 * ((768 + 2304) + (768 + 768) + (768 + 3072) + (3072 + 768))
    QCOMPARE(loraParameterCount(gpt2, {"c_attn", "c_proj", "c_fc"}, 8), int64_t(1'179'648));
    QCOMPARE(loraParameterCount(gpt2, {"attn.c_proj"}, 4), int64_t(4 * 12 * 1536));
    // The analytic count equals the injected tensors' on a real model.
    Gpt2 m = freshModel();
    LoraModel lora(m, {4, 8.0, 0.0, {"c_proj"}});
    QCOMPARE(lora.moduleNames().size(), size_t(4));  // attn.c_proj and mlp.c_proj of 2 blocks
    QCOMPARE(lora.trainableParameterCount(), loraParameterCount(tinyConfig(), {"c_proj"}, 4));
    QCOMPARE(lora.optimizerStateBytes(), 2 * 4 * lora.trainableParameterCount());
    const TrainingMemory mem = trainingMemory(*m, lora.parameters(), lora.parameters());
    QCOMPARE(mem.gradients, 4 * lora.trainableParameterCount());
    QCOMPARE(mem.weights, m->parameterBytes() + 4 * lora.trainableParameterCount());
  }

  void gpt2SmallInjectedCounts() {
    torch::manual_seed(1);
    Gpt2 m{Gpt2Config{}};  // GPT-2 124M shapes, random weights
    QCOMPARE(m->parameterCount(), int64_t(124'439'808));
    // The full fine-tune baseline: every weight trains (counted before LoRA freezes them).
    const TrainingMemory full = trainingMemory(*m, trainableParameters(*m));
    QCOMPARE(full.optimizerState, int64_t(2 * 4) * 124'439'808);
    QCOMPARE(full.gradients, int64_t(4) * 124'439'808);
    LoraModel lora(m, {8, 16.0, 0.0, {"c_attn"}});
    QCOMPARE(lora.moduleNames().size(), size_t(12));
    QCOMPARE(lora.trainableParameterCount(), int64_t(294'912));
    QCOMPARE(lora.optimizerStateBytes(), int64_t(2 * 4 * 294'912));  // AdamW: two fp32 moments
    const TrainingMemory mem = trainingMemory(*m, lora.parameters(), lora.parameters());
    QCOMPARE(mem.gradients, int64_t(4 * 294'912));
    QCOMPARE(mem.weights, 4 * (int64_t(124'439'808) + 294'912));
  }

  void zeroBLeavesLogitsBitwise() {
    Gpt2 m = freshModel();
    const auto ref = logits(m);
    LoraModel lora(m, {8, 16.0, 0.1, {"c_attn", "c_proj", "c_fc"}});
    QVERIFY(torch::equal(logits(m), ref));
    randomizeB(lora, 1);
    QVERIFY(!torch::equal(logits(m), ref));  // the side path is live
  }

  void mergedMatchesUnmerged() {
    Gpt2 m = freshModel();
    const auto base = logits(m);
    const auto w0 = m->transformer->h[0]->as<Gpt2Block>()->attn->c_attn->weight.clone();
    LoraModel lora(m, {8, 16.0, 0.0, {"c_attn", "mlp.c_fc"}});
    randomizeB(lora, 2);
    const auto unmerged = logits(m);
    lora.merge();
    QVERIFY(lora.merged());
    const auto merged = logits(m);
    auto r = test::allClose(merged, unmerged, 1e-5, 0.0);
    QVERIFY2(r.ok, r.message.c_str());
    QVERIFY(r.maxAbs > 0.0 || torch::equal(merged, unmerged));
    QVERIFY(!torch::equal(m->transformer->h[0]->as<Gpt2Block>()->attn->c_attn->weight, w0));
    lora.unmerge();
    r = test::allClose(logits(m), unmerged, 1e-5, 0.0);
    QVERIFY2(r.ok, r.message.c_str());
    lora.detach();  // back to the base model (weights restored up to rounding)
    r = test::allClose(logits(m), base, 1e-5, 0.0);
    QVERIFY2(r.ok, r.message.c_str());
  }

  void peftRoundTrip() {
    QTemporaryDir tmp;
    const std::filesystem::path dir = tmp.path().toStdString();
    Gpt2 m = freshModel();
    LoraModel lora(m, {4, 8.0, 0.05, {"c_attn", "attn.c_proj"}});
    randomizeB(lora, 3);
    const auto adapted = logits(m);
    lora.save(dir, "gpt2");

    std::ifstream in(dir / "adapter_config.json");
    const auto cfg = nlohmann::json::parse(in);
    QCOMPARE(cfg["peft_type"].get<std::string>(), std::string("LORA"));
    QCOMPARE(cfg["task_type"].get<std::string>(), std::string("CAUSAL_LM"));
    QCOMPARE(cfg["r"].get<int>(), 4);
    QCOMPARE(cfg["lora_alpha"].get<double>(), 8.0);
    QCOMPARE(cfg["lora_dropout"].get<double>(), 0.05);
    QCOMPARE(cfg["fan_in_fan_out"].get<bool>(), true);
    QCOMPARE(cfg["bias"].get<std::string>(), std::string("none"));
    QCOMPARE(cfg["base_model_name_or_path"].get<std::string>(), std::string("gpt2"));
    const auto file = SafetensorsFile::open(dir / "adapter_model.safetensors");
    QCOMPARE(file.names().size(), size_t(8));  // 2 layers x 2 modules x (A, B)
    const auto& a = file.info("base_model.model.transformer.h.1.attn.c_attn.lora_A.weight");
    const auto& b = file.info("base_model.model.transformer.h.1.attn.c_attn.lora_B.weight");
    QCOMPARE(a.shape, (std::vector<int64_t>{4, 32}));  // Linear(in, r).weight
    QCOMPARE(b.shape, (std::vector<int64_t>{96, 4}));  // Linear(r, out).weight
    QVERIFY(file.contains("base_model.model.transformer.h.0.attn.c_proj.lora_B.weight"));
    QCOMPARE(file.metadata().at("format"), std::string("pt"));

    Gpt2 other = freshModel();  // same base weights
    const auto loaded = LoraModel::load(other, dir);
    QCOMPARE(loaded->options().rank, int64_t(4));
    QCOMPARE(loaded->moduleNames(), lora.moduleNames());
    QVERIFY(torch::equal(logits(other), adapted));
  }

  void loadRejectsMismatch() {
    QTemporaryDir tmp;
    const std::filesystem::path dir = tmp.path().toStdString();
    Gpt2 m = freshModel();
    LoraModel lora(m, {4, 8.0, 0.0, {"c_attn"}});
    lora.save(dir, "");
    // A model with a different width cannot take these tensors.
    Gpt2Config c = tinyConfig();
    c.nEmbd = 48;
    Gpt2 wide(c);
    wide->eval();
    const auto before = logits(wide);
    QString what;
    try {
      LoraModel::load(wide, dir);
    } catch (const InputError& e) {
      what = e.what();
    }
    QVERIFY2(what.contains("has shape"), qPrintable(what));
    QVERIFY(torch::equal(logits(wide), before));  // nothing stays attached
    for (const auto& p : wide->parameters()) QVERIFY(p.requires_grad());
  }

  void unknownTargetIsInputError() {
    Gpt2 m = freshModel();
    QString what;
    try {
      LoraModel lora(m, {4, 8.0, 0.0, {"q_proj"}});
    } catch (const InputError& e) {
      what = e.what();
    }
    QVERIFY2(what.contains("matches no module"), qPrintable(what));
    for (const auto& p : m->parameters()) QVERIFY(p.requires_grad());
  }

  void trainingMovesOnlyAdapters() {
    Gpt2 m = freshModel();
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : m->named_parameters()) before[p.key()] = p.value().clone();
    const auto train = makeTokens(3000), val = makeTokens(400);
    TrainOptions o;
    o.steps = 5;
    o.batchSize = 4;
    o.seqLen = 16;
    o.lr = 1e-2;
    o.warmupSteps = 1;
    o.evalEvery = 0;
    o.evalWindows = 4;
    o.adamw.weightDecay = 0.0;
    {
      LoraModel lora(m, {4, 8.0, 0.1, {"c_attn"}});
      const auto b0 = lora.parameters()[1].second.clone();
      Trainer trainer(m, o, {train.data(), 3000, "train"}, {val.data(), 400, "val"},
                      {{}, lora.parameters()});
      trainer.run({}, CancelToken());
      QCOMPARE(trainer.optimizer().stateBytes(), lora.optimizerStateBytes());
      QVERIFY(!torch::equal(lora.parameters()[1].second, b0));
      QVERIFY(trainer.losses().back() < trainer.losses().front());
      for (const auto& p : m->named_parameters()) QVERIFY2(torch::equal(p.value(), before[p.key()]), p.key().c_str());
      lora.merge();
      lora.detach();
    }
    for (const auto& p : m->parameters()) QVERIFY(p.requires_grad());
  }
};

QTEST_APPLESS_MAIN(TestLora)
#include "test_lora.moc"
