// The model catalog on a fake Hugging Face cache: refs/main vs newest snapshot, blob
// symlinks, non-GPT-2 repos skipped, pickle-only and dangling repos reported, name
// aliases (gpt2 <-> openai-community/gpt2), plain folders, and the errors' hints.
#include <QTemporaryDir>
#include <QtTest>
#include <fstream>

#include "core/errors.h"
#include "core/io/model_catalog.h"
#include "core/io/safetensors.h"
#include "tests/support/test_support.h"

using namespace wb;
namespace fs = std::filesystem;

namespace {

void writeText(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// n_layer picks a different size per snapshot so the test sees which one was chosen.
std::string tinyConfig(int nLayer, const std::string& type = "gpt2") {
  return "{\"model_type\":\"" + type + "\",\"vocab_size\":10,\"n_positions\":8,\"n_embd\":4," +
         "\"n_layer\":" + std::to_string(nLayer) + ",\"n_head\":2,\"architectures\":[\"x\"]}";
}

// Parameters of tinyConfig(L) counted by hand: wte 10*4 + wpe 8*4 + ln_f 2*4, and per
// block ln 2*2*4, c_attn 4*12+12, attn c_proj 4*4+4, mlp 4*16+16 + 16*4+4 = 244.
int64_t tinyParams(int nLayer) {
  return 40 + 32 + 8 + 244 * nLayer;
}

void writeWeights(const fs::path& p, size_t floats) {
  fs::create_directories(p.parent_path());
  std::vector<float> v(floats, 0.5f);
  writeSafetensors(p,
                   {{"w", StDtype::F32, {static_cast<int64_t>(floats)}, v.data(), v.size() * 4}});
}

void setAge(const fs::path& p, int secondsAgo) {
  fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::seconds(secondsAgo));
}

std::string errorOf(const std::function<void()>& f, std::string* where = nullptr,
                    std::string* hint = nullptr) {
  try {
    f();
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

class TestModelCatalog : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  fs::path root_;

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(tmp_.isValid());
    root_ = fs::path(tmp_.path().toStdString()) / "hub";
    // gpt2: refs/main names the OLDER snapshot; files are symlinks into blobs/, as
    // huggingface_hub lays them out.
    const fs::path gpt2 = root_ / "models--gpt2";
    writeText(gpt2 / "refs/main", "aaa111\n");
    writeText(gpt2 / "blobs/cfg1", tinyConfig(1));
    writeWeights(gpt2 / "blobs/w1", 100);
    fs::create_directories(gpt2 / "snapshots/aaa111");
    fs::create_symlink("../../blobs/cfg1", gpt2 / "snapshots/aaa111/config.json");
    fs::create_symlink("../../blobs/w1", gpt2 / "snapshots/aaa111/model.safetensors");
    writeText(gpt2 / "snapshots/bbb222/config.json", tinyConfig(2));
    writeWeights(gpt2 / "snapshots/bbb222/model.safetensors", 10);
    setAge(gpt2 / "snapshots/aaa111", 3600);
    setAge(gpt2 / "snapshots/bbb222", 60);

    // No refs/main: the newest snapshot wins.
    const fs::path medium = root_ / "models--openai-community--gpt2-medium";
    writeText(medium / "snapshots/old/config.json", tinyConfig(3));
    writeWeights(medium / "snapshots/old/model.safetensors", 10);
    writeText(medium / "snapshots/new/config.json", tinyConfig(4));
    writeWeights(medium / "snapshots/new/model.safetensors", 20);
    setAge(medium / "snapshots/old", 60);
    setAge(medium / "snapshots/new", 10);

    // Sharded weights: the size is the shards' sum.
    const fs::path sharded = root_ / "models--org--sharded/snapshots/s1";
    writeText(root_ / "models--org--sharded/refs/main", "s1");
    writeText(sharded / "config.json", tinyConfig(1));
    writeWeights(sharded / "model-00001-of-00002.safetensors", 30);
    writeWeights(sharded / "model-00002-of-00002.safetensors", 40);
    writeText(sharded / "model.safetensors.index.json",
              "{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
              "\"b\":\"model-00002-of-00002.safetensors\"}}");

    // Not GPT-2: skipped even with includeUnusable.
    writeText(root_ / "models--bert-base-uncased/refs/main", "r");
    writeText(root_ / "models--bert-base-uncased/snapshots/r/config.json", tinyConfig(1, "bert"));
    writeWeights(root_ / "models--bert-base-uncased/snapshots/r/model.safetensors", 4);

    // GPT-2 with only a pickle checkpoint, and a repo whose ref names a missing snapshot.
    writeText(root_ / "models--org--pickled/snapshots/p/config.json", tinyConfig(1));
    writeText(root_ / "models--org--pickled/snapshots/p/pytorch_model.bin", "PK\x03\x04");
    writeText(root_ / "models--org--dangling/refs/main", "gone");
    writeText(root_ / "models--org--dangling/snapshots/other/config.json", tinyConfig(1));

    // Not a repo folder at all.
    writeText(root_ / ".locks/models--gpt2/x.lock", "");
    writeText(root_ / "version.txt", "1");
  }

  void cacheRootFollowsEnvironment() {
    const auto saved = [](const char* n) { return qgetenv(n); };
    const QByteArray hub = saved("HF_HUB_CACHE"), legacy = saved("HUGGINGFACE_HUB_CACHE"),
                     home = saved("HF_HOME"), xdg = saved("XDG_CACHE_HOME"), h = saved("HOME");
    qunsetenv("HF_HUB_CACHE");
    qunsetenv("HUGGINGFACE_HUB_CACHE");
    qunsetenv("HF_HOME");
    qunsetenv("XDG_CACHE_HOME");
    qputenv("HOME", "/home/u");
    QCOMPARE(hfCacheRoot(), fs::path("/home/u/.cache/huggingface/hub"));
    qputenv("XDG_CACHE_HOME", "/x");
    QCOMPARE(hfCacheRoot(), fs::path("/x/huggingface/hub"));
    qputenv("HF_HOME", "~/hf");
    QCOMPARE(hfCacheRoot(), fs::path("/home/u/hf/hub"));
    qputenv("HUGGINGFACE_HUB_CACHE", "/legacy");
    QCOMPARE(hfCacheRoot(), fs::path("/legacy"));
    qputenv("HF_HUB_CACHE", "/hub");
    QCOMPARE(hfCacheRoot(), fs::path("/hub"));
    qputenv("HF_HUB_CACHE", "");  // empty counts as unset
    QCOMPARE(hfCacheRoot(), fs::path("/legacy"));
    for (auto [n, v] : {std::pair{"HF_HUB_CACHE", hub},
                        {"HUGGINGFACE_HUB_CACHE", legacy},
                        {"HF_HOME", home},
                        {"XDG_CACHE_HOME", xdg},
                        {"HOME", h}}) {
      if (v.isNull())
        qunsetenv(n);
      else
        qputenv(n, v);
    }
  }

  void listsUsableGpt2Models() {
    const auto list = listCachedModels(root_);
    QCOMPARE(list.size(), size_t(3));
    QCOMPARE(list[0].name, std::string("gpt2"));
    QCOMPARE(list[0].revision, std::string("aaa111"));  // refs/main, not the newer bbb222
    QCOMPARE(list[0].path, root_ / "models--gpt2/snapshots/aaa111");
    QCOMPARE(list[0].parameterCount, tinyParams(1));
    QCOMPARE(list[0].weightBytes, uint64_t(fs::file_size(root_ / "models--gpt2/blobs/w1")));
    QVERIFY(list[0].weightBytes > 400);  // the blob, not the symlink's own size
    QVERIFY(list[0].problem.empty());
    QCOMPARE(list[1].name, std::string("openai-community/gpt2-medium"));
    QCOMPARE(list[1].revision, std::string("new"));  // newest snapshot without refs/main
    QCOMPARE(list[1].parameterCount, tinyParams(4));
    QCOMPARE(list[2].name, std::string("org/sharded"));
    const fs::path s = root_ / "models--org--sharded/snapshots/s1";
    QCOMPARE(list[2].weightBytes, uint64_t(fs::file_size(s / "model-00001-of-00002.safetensors") +
                                           fs::file_size(s / "model-00002-of-00002.safetensors")));
  }

  void listsUnusableWithProblem() {
    const auto list = listCachedModels(root_, true);
    QCOMPARE(list.size(), size_t(5));
    std::map<std::string, std::string> problems;
    for (const auto& e : list) problems[e.name] = e.problem;
    QVERIFY(!problems.count("bert-base-uncased"));
    QVERIFY2(has(problems["org/pickled"], "pickle"), problems["org/pickled"].c_str());
    QVERIFY2(has(problems["org/dangling"], "refs/main"), problems["org/dangling"].c_str());
    QVERIFY2(has(problems["org/dangling"], "\"gone\""), problems["org/dangling"].c_str());
    QVERIFY(problems["gpt2"].empty());
  }

  void missingCacheIsEmpty() { QVERIFY(listCachedModels(root_ / "nowhere").empty()); }

  void resolvesHfNames() {
    const fs::path gpt2 = root_ / "models--gpt2/snapshots/aaa111";
    QCOMPARE(resolveModelSource("hf:gpt2", root_), gpt2);
    QCOMPARE(resolveModelSource("hf:openai-community/gpt2", root_), gpt2);  // moved repo
    QCOMPARE(resolveModelSource("hf:gpt2-medium", root_),
             root_ / "models--openai-community--gpt2-medium/snapshots/new");
    QCOMPARE(resolveModelSource("hf:gpt2@bbb222", root_), root_ / "models--gpt2/snapshots/bbb222");
    QCOMPARE(resolveModelSource("hf:gpt2@main", root_), gpt2);
    QCOMPARE(resolveModelSource("hf:org/sharded", root_),
             root_ / "models--org--sharded/snapshots/s1");
  }

  void resolveErrorsNamePathAndHint() {
    std::string where, hint;
    std::string msg = errorOf([&] { resolveModelSource("hf:gpt2-xl", root_); }, &where, &hint);
    QVERIFY2(has(msg, "gpt2-xl is not in the Hugging Face cache"), msg.c_str());
    QVERIFY2(has(msg, root_.string()), msg.c_str());
    QVERIFY2(has(msg, "GPT-2 models there: gpt2, openai-community/gpt2-medium"), msg.c_str());
    QCOMPARE(where, (root_ / "models--gpt2-xl").string());
    QVERIFY2(has(hint, "never downloads") && has(hint, "huggingface-cli"), hint.c_str());

    msg = errorOf([&] { resolveModelSource("hf:gpt2@nope", root_); }, nullptr, &hint);
    QVERIFY2(has(msg, "models--gpt2") && has(msg, "\"nope\""), msg.c_str());
    QVERIFY2(has(hint, "aaa111, bbb222"), hint.c_str());

    msg = errorOf([&] { resolveModelSource("hf:org/dangling", root_); }, &where);
    QCOMPARE(where, (root_ / "models--org--dangling/refs/main").string());

    for (const char* bad : {"hf:", "hf:../gpt2", "hf:a/b/c", "hf:/gpt2"}) {
      msg = errorOf([&] { resolveModelSource(bad, root_); });
      QVERIFY2(has(msg, "expected hf:NAME"), msg.c_str());
    }
  }

  void resolvesPlainFolders() {
    const fs::path snap = root_ / "models--gpt2/snapshots/bbb222";
    QCOMPARE(resolveModelSource(snap.string(), root_), snap);
    std::string where;
    const fs::path noConfig = root_ / "models--gpt2/blobs";
    std::string msg = errorOf([&] { resolveModelSource(noConfig.string(), root_); }, &where);
    QVERIFY2(has(msg, "no config.json"), msg.c_str());
    QCOMPARE(where, noConfig.string());
    msg = errorOf([&] { resolveModelSource((root_ / "absent").string(), root_); }, &where);
    QVERIFY2(has(msg, "no such folder"), msg.c_str());
    QCOMPARE(where, (root_ / "absent").string());
    msg = errorOf([&] { resolveModelSource((root_ / "version.txt").string(), root_); });
    QVERIFY2(has(msg, "not a folder"), msg.c_str());
  }

  void describesAFolder() {
    const CatalogEntry e = describeModelFolder(root_ / "models--gpt2/snapshots/bbb222");
    QCOMPARE(e.name, std::string("bbb222"));
    QCOMPARE(e.parameterCount, tinyParams(2));
    QVERIFY(e.problem.empty());
    const CatalogEntry p = describeModelFolder(root_ / "models--org--pickled/snapshots/p");
    QVERIFY2(has(p.problem, "pytorch_model.bin"), p.problem.c_str());
    QCOMPARE(p.weightBytes, uint64_t(0));
    QVERIFY_THROWS_EXCEPTION(InputError, describeModelFolder(root_ / "models--gpt2/blobs"));
    // A config that is not GPT-2 is refused by name.
    const std::string msg =
        errorOf([&] { describeModelFolder(root_ / "models--bert-base-uncased/snapshots/r"); });
    QVERIFY2(has(msg, "\"bert\""), msg.c_str());
  }
  void benchModelsAndInspect() {
    auto r = test::runProcess(test::benchExe(), {"models", "--cache", root_.string()});
    QVERIFY2(r.exitCode == 0, r.err.c_str());
    QVERIFY2(has(r.out, ": 3 GPT-2 models"), r.out.c_str());
    QVERIFY2(has(r.out, "hf:gpt2 ") && has(r.out, "rev aaa111"), r.out.c_str());
    QVERIFY2(!has(r.out, "pickled"), r.out.c_str());
    r = test::runProcess(test::benchExe(), {"models", "--all", "--cache", root_.string()});
    QVERIFY2(has(r.out, "hf:org/pickled") && has(r.out, "unusable"), r.out.c_str());

    r = test::runProcess(test::benchExe(), {"inspect", "hf:gpt2", "--cache", root_.string()});
    QVERIFY2(r.exitCode == 0, r.err.c_str());
    QVERIFY2(has(r.out, "revision    aaa111"), r.out.c_str());
    QVERIFY2(has(r.out, "parameters  " + std::to_string(tinyParams(1))), r.out.c_str());
    r = test::runProcess(test::benchExe(), {"inspect", "hf:gpt2-xl", "--cache", root_.string()});
    QCOMPARE(r.exitCode, 2);
    QVERIFY2(has(r.err, "not in the Hugging Face cache") && has(r.err, "never downloads"),
             r.err.c_str());
  }
};

QTEST_APPLESS_MAIN(TestModelCatalog)
#include "test_model_catalog.moc"
