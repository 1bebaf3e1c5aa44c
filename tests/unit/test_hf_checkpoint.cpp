// HF GPT-2 checkpoints on a module built here with GPT2LMHeadModel's parameter names:
// save -> load is bit-exact, prefix-less and sharded files load, dtypes convert, and
// missing / unexpected / mis-shaped tensors and pickle-only folders are refused with
// messages that name the tensor and the file. Also safetensors <-> tensor glue, and
// the real Gpt2 module: save -> config.json -> new model -> load gives identical logits.
#include <QTemporaryDir>
#include <QtTest>
#include <fstream>

#include "core/errors.h"
#include "core/io/hf_checkpoint.h"
#include "core/io/safetensors_torch.h"
#include "core/model/gpt2.h"
#include "tests/support/test_support.h"
#include "tests/support/torch_support.h"

using namespace wb;
namespace fs = std::filesystem;
using Module = torch::nn::Module;

namespace {

constexpr int64_t kVocab = 11, kPos = 7, kEmbd = 8, kInner = 32, kLayers = 2;

// Registers `t` under a dotted name, creating plain child modules for the path:
// C++ modules refuse dots in parameter names, so "transformer.h.0.ln_1.weight" is the
// parameter "weight" of the module transformer -> h -> 0 -> ln_1.
void addParam(Module& root, const std::string& dotted, torch::Tensor t) {
  Module* m = &root;
  size_t start = 0;
  for (size_t dot; (dot = dotted.find('.', start)) != std::string::npos; start = dot + 1) {
    const std::string seg = dotted.substr(start, dot - start);
    std::shared_ptr<Module> child;
    for (const auto& c : m->named_children())
      if (c.key() == seg) child = c.value();
    if (!child) child = m->register_module(seg, std::make_shared<Module>());
    m = child.get();
  }
  m->register_parameter(dotted.substr(start), std::move(t));
}

// name -> shape of GPT2LMHeadModel's state_dict (Conv1D weights [in, out]).
std::vector<std::pair<std::string, std::vector<int64_t>>> hfShapes(bool tied) {
  const int64_t e = kEmbd;
  std::vector<std::pair<std::string, std::vector<int64_t>>> s = {
      {"transformer.wte.weight", {kVocab, e}}, {"transformer.wpe.weight", {kPos, e}}};
  for (int64_t i = 0; i < kLayers; ++i) {
    const std::string h = "transformer.h." + std::to_string(i) + ".";
    s.insert(s.end(), {{h + "ln_1.weight", {e}},
                       {h + "ln_1.bias", {e}},
                       {h + "attn.c_attn.weight", {e, 3 * e}},
                       {h + "attn.c_attn.bias", {3 * e}},
                       {h + "attn.c_proj.weight", {e, e}},
                       {h + "attn.c_proj.bias", {e}},
                       {h + "ln_2.weight", {e}},
                       {h + "ln_2.bias", {e}},
                       {h + "mlp.c_fc.weight", {e, kInner}},
                       {h + "mlp.c_fc.bias", {kInner}},
                       {h + "mlp.c_proj.weight", {kInner, e}},
                       {h + "mlp.c_proj.bias", {e}}});
  }
  s.insert(s.end(), {{"transformer.ln_f.weight", {e}}, {"transformer.ln_f.bias", {e}}});
  if (!tied) s.push_back({"lm_head.weight", {kVocab, e}});
  return s;
}

std::shared_ptr<Module> tinyModel(uint64_t seed, bool tied = true,
                                  torch::ScalarType dtype = torch::kFloat32) {
  torch::manual_seed(seed);
  auto m = std::make_shared<Module>();
  for (const auto& [name, shape] : hfShapes(tied))
    addParam(*m, name, torch::randn(shape).to(dtype));
  return m;
}

nlohmann::json tinyConfig(bool tied = true) {
  return {{"model_type", "gpt2"}, {"vocab_size", kVocab},       {"n_positions", kPos},
          {"n_embd", kEmbd},      {"n_layer", kLayers},         {"n_head", 2},
          {"n_inner", kInner},    {"tie_word_embeddings", tied}};
}

std::map<std::string, torch::Tensor> paramsOf(const Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

void expectSameParams(const Module& a, const Module& b) {
  const auto pa = paramsOf(a), pb = paramsOf(b);
  QCOMPARE(pa.size(), pb.size());
  for (const auto& [name, t] : pa) {
    QVERIFY2(pb.count(name), name.c_str());
    QVERIFY2(torch::equal(t, pb.at(name)), name.c_str());  // bit-exact: tolerance 0
  }
}

// The tiny model's tensors under chosen file names (e.g. without the prefix).
std::vector<std::pair<std::string, torch::Tensor>> fileTensors(
    const Module& m, const std::function<std::string(const std::string&)>& rename) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters()) {
    const std::string n = rename(p.key());
    if (!n.empty()) out.emplace_back(n, p.value());
  }
  return out;
}

std::string loadError(Module& m, const fs::path& folder, std::string* where = nullptr,
                      std::string* hint = nullptr) {
  try {
    loadHfWeights(m, folder);
  } catch (const InputError& e) {
    if (where) *where = e.where();
    if (hint) *hint = e.hint();
    return e.what();
  }
  return "(no error)";
}

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

class TestHfCheckpoint : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void tensorRoundTripEveryDtype_data() {
    QTest::addColumn<int>("type");
    for (auto t :
         {torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kInt64,
          torch::kInt32, torch::kInt16, torch::kInt8, torch::kUInt8, torch::kBool})
      QTest::newRow(c10::toString(t)) << static_cast<int>(t);
  }
  void tensorRoundTripEveryDtype() {
    QFETCH(int, type);
    const auto st = static_cast<torch::ScalarType>(type);
    torch::manual_seed(3);
    const torch::Tensor base = torch::randn({5, 6}) * 50;
    const torch::Tensor t = (st == torch::kBool ? base > 0 : base.to(st));
    const torch::Tensor strided = t.t();  // not contiguous: saved as its logical values
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "t.safetensors";
    saveTensors(path, {{"a", t}, {"b.t", strided}, {"c", t.flatten()[0]}}, {{"k", "v"}});
    const auto f = SafetensorsFile::open(path);
    QCOMPARE(f.metadata().at("k"), std::string("v"));
    for (const auto& [name, want] : {std::pair{"a", t}, {"b.t", strided}, {"c", t.flatten()[0]}}) {
      const torch::Tensor got = loadTensor(f, name);
      QCOMPARE(got.scalar_type(), st);
      QVERIFY(got.sizes() == want.sizes());
      QVERIFY2(torch::equal(got, want), name);  // bit-exact
      const torch::Tensor view = mappedTensor(f, name);
      if (st == torch::kBool) {
        QVERIFY(!view.defined());  // BOOL bytes need the 0/1 check of loadTensor
      } else {
        QVERIFY(view.defined());  // the writer aligns the data, so views are possible
        QVERIFY2(torch::equal(view, want), name);
      }
    }
  }

  void badBoolBytesAndUnsupportedDtype() {
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "b.safetensors";
    const uint8_t bytes[3] = {0, 1, 2};
    writeSafetensors(path, {{"flags", StDtype::BOOL, {3}, bytes, 3}});
    const auto f = SafetensorsFile::open(path);
    try {
      (void)loadTensor(f, "flags");
      QFAIL("expected InputError");
    } catch (const InputError& e) {
      QVERIFY2(has(e.what(), "\"flags\"") && has(e.what(), "byte 2 is 2"), e.what());
    }
    QVERIFY_THROWS_EXCEPTION(InputError,
                             saveTensors(path, {{"z", torch::zeros({2}, torch::kComplexFloat)}}));
  }

  void saveThenLoadIsBitExact_data() {
    QTest::addColumn<bool>("tied");
    QTest::addColumn<int>("type");
    QTest::newRow("tied fp32") << true << static_cast<int>(torch::kFloat32);
    QTest::newRow("untied fp32") << false << static_cast<int>(torch::kFloat32);
    QTest::newRow("tied bf16") << true << static_cast<int>(torch::kBFloat16);
    QTest::newRow("tied fp16") << true << static_cast<int>(torch::kFloat16);
  }
  void saveThenLoadIsBitExact() {
    QFETCH(bool, tied);
    QFETCH(int, type);
    const auto st = static_cast<torch::ScalarType>(type);
    QTemporaryDir tmp;
    const fs::path dir = fs::path(tmp.path().toStdString()) / "ckpt" / "nested";
    const auto a = tinyModel(1, tied, st);
    saveHfCheckpoint(*a, tinyConfig(tied), dir);
    std::ifstream cfgIn(dir / "config.json");
    QCOMPARE(nlohmann::json::parse(cfgIn), tinyConfig(tied));
    const auto f = SafetensorsFile::open(dir / "model.safetensors");
    QCOMPARE(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
    std::vector<std::string> expected;
    for (const auto& [name, shape] : hfShapes(tied)) expected.push_back(name);
    QCOMPARE(f.names(), expected);  // HF names, in parameter order, lm_head only if untied
    QCOMPARE(f.info("transformer.h.1.attn.c_attn.weight").shape,
             (std::vector<int64_t>{kEmbd, 3 * kEmbd}));
    QCOMPARE(toScalarType(f.info("transformer.wte.weight").dtype), st);  // the param's dtype

    const auto b = tinyModel(2, tied, st);
    QVERIFY(!torch::equal(paramsOf(*a).begin()->second, paramsOf(*b).begin()->second));
    loadHfWeights(*b, dir);
    expectSameParams(*a, *b);
    for (const auto& p : b->named_parameters()) QVERIFY(p.value().requires_grad());
    // No temp files are left behind.
    for (const auto& e : fs::directory_iterator(dir))
      QVERIFY2(!has(e.path().filename().string(), ".tmp-"), e.path().c_str());
  }

  void fileWithoutPrefixAndHfBuffersLoads() {
    // Old GPT2LMHeadModel exports: no "transformer." prefix, the causal-mask buffers
    // attn.bias / attn.masked_bias, and a redundant lm_head.weight for a tied model.
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    const auto a = tinyModel(1);
    auto tensors = fileTensors(*a, [](const std::string& n) { return n.substr(12); });
    tensors.emplace_back("h.0.attn.bias", torch::ones({1, 1, kPos, kPos}).tril());
    tensors.emplace_back("h.0.attn.masked_bias", torch::tensor(-1e4));
    tensors.emplace_back("lm_head.weight", torch::randn({kVocab, kEmbd}));
    saveTensors(dir / "model.safetensors", tensors);
    const auto b = tinyModel(2);
    loadHfWeights(*b, dir);
    expectSameParams(*a, *b);
  }

  void dtypeIsConvertedToTheParameters() {
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    const auto bf = tinyModel(1, true, torch::kBFloat16);
    saveHfCheckpoint(*bf, tinyConfig(), dir);
    const auto f32 = tinyModel(2);
    loadHfWeights(*f32, dir);
    const auto want = paramsOf(*bf);
    for (const auto& [name, t] : paramsOf(*f32)) {
      QCOMPARE(t.scalar_type(), torch::kFloat32);
      // bf16 -> fp32 is exact, so the tolerance is 0.
      QVERIFY2(torch::equal(t, want.at(name).to(torch::kFloat32)), name.c_str());
    }
  }

  void missingTensorsAreListed() {
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    const auto a = tinyModel(1);
    saveTensors(dir / "model.safetensors", fileTensors(*a, [](const std::string& n) {
                  return n.find(".h.1.") != std::string::npos || n.ends_with("ln_f.bias")
                             ? std::string()
                             : n;
                }));
    const auto b = tinyModel(2);
    const auto before = paramsOf(*b);
    std::string where;
    const std::string msg = loadError(*b, dir, &where);
    QCOMPARE(where, dir.string());
    QVERIFY2(has(msg, "lacks model parameters"), msg.c_str());
    QVERIFY2(has(msg, "transformer.h.1.attn.c_attn.bias"), msg.c_str());
    QVERIFY2(has(msg, "(13 in all)"), msg.c_str());  // 12 of block 1 + ln_f.bias
    QVERIFY2(has(msg, ", ..."), msg.c_str());
    // Nothing was copied: the checks run before the first copy.
    for (const auto& [name, t] : paramsOf(*b)) QVERIFY(torch::equal(t, before.at(name)));
  }

  void untiedModelRequiresLmHead() {
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    saveHfCheckpoint(*tinyModel(1, true), tinyConfig(true), dir);
    const auto untied = tinyModel(2, false);
    std::string hint;
    const std::string msg = loadError(*untied, dir, nullptr, &hint);
    QVERIFY2(has(msg, "lm_head.weight (1 in all)"), msg.c_str());
    QVERIFY2(has(hint, "tie_word_embeddings"), hint.c_str());
  }

  void unexpectedTensorsAreRefused() {
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    const auto a = tinyModel(1);
    auto tensors = fileTensors(*a, [](const std::string& n) { return n; });
    tensors.emplace_back("transformer.h.7.mlp.c_fc.weight", torch::zeros({kEmbd, kInner}));
    saveTensors(dir / "model.safetensors", tensors);
    const auto b = tinyModel(2);
    const std::string msg = loadError(*b, dir);
    QVERIFY2(has(msg, "tensors the model does not: transformer.h.7.mlp.c_fc.weight (1 in all)"),
             msg.c_str());
  }

  void shapeMismatchNamesTensorFileAndShapes() {
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    const auto a = tinyModel(1);
    // An nn.Linear-style export: c_attn stored [out, in] instead of Conv1D's [in, out].
    auto tensors = fileTensors(*a, [](const std::string& n) { return n; });
    for (auto& [name, t] : tensors)
      if (name == "transformer.h.1.attn.c_attn.weight") t = t.t();
    saveTensors(dir / "model.safetensors", tensors);
    const auto b = tinyModel(2);
    const auto before = paramsOf(*b);
    std::string where, hint;
    const std::string msg = loadError(*b, dir, &where, &hint);
    QCOMPARE(where, (dir / "model.safetensors").string());
    QVERIFY2(has(msg, "\"transformer.h.1.attn.c_attn.weight\" has shape [24, 8]"), msg.c_str());
    QVERIFY2(has(msg, "expects [8, 24]"), msg.c_str());
    QVERIFY2(has(hint, "[in, out]"), hint.c_str());
    for (const auto& [name, t] : paramsOf(*b)) QVERIFY(torch::equal(t, before.at(name)));
  }

  void integerTensorForFloatParameterIsRefused() {
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    auto tensors = fileTensors(*tinyModel(1), [](const std::string& n) { return n; });
    tensors[0].second = torch::zeros({kVocab, kEmbd}, torch::kInt32);
    saveTensors(dir / "model.safetensors", tensors);
    const auto b = tinyModel(2);
    const std::string msg = loadError(*b, dir);
    QVERIFY2(has(msg, "\"transformer.wte.weight\" is I32"), msg.c_str());
  }

  void prefixedAndBareDuplicateIsRefused() {
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    const auto a = tinyModel(1);
    auto tensors = fileTensors(*a, [](const std::string& n) { return n; });
    tensors.emplace_back("wte.weight", torch::zeros({kVocab, kEmbd}));
    saveTensors(dir / "model.safetensors", tensors);
    const auto b = tinyModel(2);
    const std::string msg = loadError(*b, dir);
    QVERIFY2(has(msg, "\"wte.weight\" duplicates \"transformer.wte.weight\""), msg.c_str());
  }

  void shardedIndexLoads() {
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    const auto a = tinyModel(1);
    std::vector<std::pair<std::string, torch::Tensor>> s1, s2;
    nlohmann::json map = nlohmann::json::object();
    for (const auto& p : a->named_parameters()) {
      const bool first = p.key().find(".h.1.") == std::string::npos;
      (first ? s1 : s2).emplace_back(p.key(), p.value());
      map[p.key()] =
          first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
    saveTensors(dir / "model-00001-of-00002.safetensors", s1);
    saveTensors(dir / "model-00002-of-00002.safetensors", s2);
    const nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", map}};
    std::ofstream(dir / "model.safetensors.index.json") << index.dump();
    const auto b = tinyModel(2);
    loadHfWeights(*b, dir);
    expectSameParams(*a, *b);

    // The index must agree with the shards.
    nlohmann::json wrong = index;
    wrong["weight_map"]["transformer.wte.weight"] = "model-00002-of-00002.safetensors";
    std::ofstream(dir / "model.safetensors.index.json") << wrong.dump();
    std::string where;
    std::string msg = loadError(*b, dir, &where);
    QCOMPARE(where, (dir / "model.safetensors.index.json").string());
    QVERIFY2(has(msg, "\"transformer.wte.weight\" is in shard model-00001-of-00002.safetensors"),
             msg.c_str());

    nlohmann::json missing = index;
    missing["weight_map"]["transformer.wte.weight"] = "model-00003-of-00002.safetensors";
    std::ofstream(dir / "model.safetensors.index.json") << missing.dump();
    msg = loadError(*b, dir);
    QVERIFY2(has(msg, "shard model-00003-of-00002.safetensors is missing"), msg.c_str());

    nlohmann::json escape = index;
    escape["weight_map"]["transformer.wte.weight"] = "../model-00001-of-00002.safetensors";
    std::ofstream(dir / "model.safetensors.index.json") << escape.dump();
    msg = loadError(*b, dir);
    QVERIFY2(has(msg, "is not a .safetensors file name in this folder"), msg.c_str());
  }

  void pickleOnlyFolderIsRefused() {
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    // Not a valid pickle at all: the refusal must come from the name, before any read.
    std::ofstream(dir / "pytorch_model.bin") << "\x80\x02garbage";
    std::ofstream(dir / "config.json") << tinyConfig().dump();
    const auto b = tinyModel(2);
    std::string where, hint;
    const std::string msg = loadError(*b, dir, &where, &hint);
    QCOMPARE(where, (dir / "pytorch_model.bin").string());
    QVERIFY2(has(msg, "only pickle weights"), msg.c_str());
    QVERIFY2(has(hint, "save_file") && has(hint, "weights_only=True"), hint.c_str());

    fs::remove(dir / "pytorch_model.bin");
    const std::string none = loadError(*b, dir);
    QVERIFY2(has(none, "no model.safetensors"), none.c_str());
  }
  void gpt2SaveReloadGivesIdenticalLogits_data() {
    QTest::addColumn<bool>("tied");
    QTest::newRow("tied") << true;
    QTest::newRow("untied") << false;
  }
  void gpt2SaveReloadGivesIdenticalLogits() {
    QFETCH(bool, tied);
    Gpt2Config c;
    c.vocabSize = 53;
    c.nPositions = 16;
    c.nEmbd = 24;
    c.nLayer = 2;
    c.nHead = 3;
    c.tieWordEmbeddings = tied;
    torch::manual_seed(11);
    Gpt2 a(c);
    a->eval();
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    saveHfCheckpoint(*a, c.toJson(), dir);
    if (!tied) QVERIFY(SafetensorsFile::open(dir / "model.safetensors").contains("lm_head.weight"));

    // The whole path a user takes: config.json -> a fresh model -> weights.
    const Gpt2Config back = Gpt2Config::fromFile((dir / "config.json").string());
    QCOMPARE(back.parameterCount(), c.parameterCount());
    torch::manual_seed(12);
    Gpt2 b(back);
    b->eval();
    const auto ids = torch::randint(0, c.vocabSize, {2, 9}, torch::kLong);
    torch::NoGradGuard noGrad;
    QVERIFY(!torch::equal(a->forward(ids), b->forward(ids)));
    loadHfWeights(*b, dir);
    // Same weights, same code, same inputs: tolerance 0.
    QVERIFY(torch::equal(a->forward(ids), b->forward(ids)));
    if (tied) {  // the tie survives the load: the head still is wte
      QCOMPARE(b->named_parameters().size(), a->named_parameters().size());
      QVERIFY(!b->lmHeadWeight.defined());
    }
  }

  void gpt2CheckpointWithWrongConfigIsRefused() {
    Gpt2Config c;
    c.vocabSize = 53;
    c.nPositions = 16;
    c.nEmbd = 24;
    c.nLayer = 2;
    c.nHead = 3;
    Gpt2 a(c);
    QTemporaryDir tmp;
    const fs::path dir(tmp.path().toStdString());
    saveHfCheckpoint(*a, c.toJson(), dir);
    c.nLayer = 3;
    Gpt2 deeper(c);
    std::string msg = loadError(*deeper, dir);
    QVERIFY2(has(msg, "lacks model parameters: transformer.h.2.ln_1.weight"), msg.c_str());
    c.nLayer = 2;
    c.nEmbd = 30;
    Gpt2 wider(c);
    msg = loadError(*wider, dir);
    QVERIFY2(has(msg, "\"transformer.wte.weight\" has shape [53, 24], the model expects [53, 30]"),
             msg.c_str());
  }
  void benchInspectChecksACheckpoint() {
    Gpt2Config c;
    c.vocabSize = 53;
    c.nPositions = 16;
    c.nEmbd = 24;
    c.nLayer = 2;
    c.nHead = 3;
    Gpt2 a(c);
    QTemporaryDir tmp;
    const fs::path dir = fs::path(tmp.path().toStdString()) / "my-gpt";
    saveHfCheckpoint(*a, c.toJson(), dir);
    auto r = test::runProcess(test::benchExe(), {"inspect", dir.string(), "--tensors", "--check"});
    QVERIFY2(r.exitCode == 0, (r.out + r.err).c_str());
    // 53*24 + 16*24 + 2*(4*24 + 24*72+72 + 24*24+24 + 24*96+96 + 96*24+24) + 2*24
    QVERIFY2(has(r.out, "parameters  16,152 (from config.json)"), r.out.c_str());
    QVERIFY2(has(r.out, "F32 x28"), r.out.c_str());
    QVERIFY2(has(r.out, "metadata    format = pt"), r.out.c_str());
    QVERIFY2(has(r.out, "transformer.h.1.mlp.c_fc.weight"), r.out.c_str());
    QVERIFY2(has(r.out, "load check  ok: 28 tensors, 16,152 parameters"), r.out.c_str());
    QCOMPARE(c.parameterCount(), int64_t(16152));

    r = test::runProcess(test::benchExe(), {"inspect", (dir / "model.safetensors").string()});
    QVERIFY2(r.exitCode == 0 && has(r.out, "tensors     28, 16,152 values"), r.out.c_str());

    fs::remove(dir / "model.safetensors");
    std::ofstream(dir / "pytorch_model.bin") << "not read";
    r = test::runProcess(test::benchExe(), {"inspect", dir.string()});
    QCOMPARE(r.exitCode, 2);
    QVERIFY2(has(r.err, "only pickle weights") && has(r.err, "hint:") && has(r.err, "save_file"),
             r.err.c_str());
    r = test::runProcess(test::benchExe(), {"inspect", (dir / "pytorch_model.bin").string()});
    QCOMPARE(r.exitCode, 2);
    QVERIFY2(has(r.err, "never read"), r.err.c_str());
  }
};

QTEST_APPLESS_MAIN(TestHfCheckpoint)
#include "test_hf_checkpoint.moc"
