// SHA-256 vectors, the assets check, nanoGPT token files (round trip, malformed files),
// prepare-data (split sizes, determinism, the cache) and the CLI's tokenize and
// prepare-data run as child processes.
#include <QTemporaryDir>
#include <QtTest>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/io/assets.h"
#include "core/io/data_prep.h"
#include "core/io/sha256.h"
#include "core/io/token_file.h"
#include "core/io/tokenizer.h"
#include "tests/support/test_support.h"

using namespace wb;
namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;
Q_DECLARE_METATYPE(std::string)

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}
Ids readIds(const fs::path& p) {
  const TokenFile f(p);
  return Ids(f.data(), f.data() + f.size());
}

// Sets an environment variable for one scope, restoring the old value afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

template <class F>
std::string inputErrorOf(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no InputError>";
}

}  // namespace

class TestTokenData : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void sha256Vectors_data() {
    QTest::addColumn<std::string>("input");
    QTest::addColumn<std::string>("digest");
    // FIPS 180-4 examples (NIST CSRC "SHA256.pdf") and the million-'a' vector.
    QTest::newRow("empty")
        << std::string()
        << std::string("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    QTest::newRow("abc") << std::string("abc")
                         << std::string(
                                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    QTest::newRow("448-bit")
        << std::string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
        << std::string("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    QTest::newRow("million-a")
        << std::string(1000000, 'a')
        << std::string("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }
  void sha256Vectors() {
    QFETCH(std::string, input);
    QFETCH(std::string, digest);
    QCOMPARE(sha256Hex(input), digest);
    // The same through uneven update() pieces (crossing the 64-byte blocks).
    Sha256 h;
    for (size_t at = 0, step = 1; at < input.size(); at += step, step = step % 97 + 13)
      h.update(std::string_view(input).substr(at, step));
    QCOMPARE(h.finishHex(), digest);
  }

  void assetsVerifiedAgainstLock() {
    // scripts/assets.lock pins the sums that sha256sum computed; ours must agree.
    std::istringstream lock(slurp(wb::test::sourceDir() / "scripts/assets.lock"));
    std::string line;
    int checked = 0;
    while (std::getline(lock, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      std::string name, sum;
      fields >> name >> sum;
      QCOMPARE(sha256File(assetPath(name)), sum);
      ++checked;
    }
    QCOMPARE(checked, 3);
    QVERIFY(resolveAssetRef("asset:moby-dick").filename() == "moby-dick.txt");
    QCOMPARE(resolveAssetRef("plain/file.txt"), fs::path("plain/file.txt"));
  }

  void assetErrors() {
    QTemporaryDir tmp;
    const fs::path dir = tmp.path().toStdString();
    ScopedEnv env("WB_ASSETS_DIR", dir.string());
    std::string what = inputErrorOf([] { assetPath("vocab.bpe"); });
    QVERIFY2(what.find((dir / "vocab.bpe").string() + ": asset is missing") != std::string::npos,
             what.c_str());
    spit(dir / "vocab.bpe", "not the real file\n");
    what = inputErrorOf([] { assetPath("vocab.bpe"); });
    QVERIFY2(what.find("manifest.json") != std::string::npos, what.c_str());
    spit(dir / "manifest.json", R"({"schema": 1, "files": [{"name": "vocab.bpe", "sha256": ")" +
                                    std::string(64, '0') + R"(", "bytes": 18}]})");
    try {
      assetPath("vocab.bpe");
      QFAIL("expected InputError");
    } catch (const InputError& e) {
      what = e.what();
      QVERIFY2(what.find((dir / "vocab.bpe").string()) != std::string::npos, e.what());
      QVERIFY2(what.find("does not match the manifest") != std::string::npos, e.what());
      QVERIFY(e.hint().find("scripts/bootstrap") != std::string::npos);
      QVERIFY(e.hint().find("WB_ASSETS_FROM") != std::string::npos);
    }
    what = inputErrorOf([] { resolveAssetRef("asset:moby-dick"); });
    QVERIFY2(what.find("moby-dick.txt: asset is missing") != std::string::npos, what.c_str());
  }

  void tokenFileRoundTrip() {
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "train.bin";
    std::mt19937 rng(1);
    Ids ids(200003);  // more than one 65,536-token write chunk, not a multiple of it
    for (auto& id : ids) id = int32_t(rng() % 65536);
    ids[0] = 0x1234;
    ids[1] = 65535;
    writeTokenFile(path, ids);
    QCOMPARE(fs::file_size(path), uintmax_t(2 * ids.size()));
    const std::string raw = slurp(path);
    QCOMPARE(uint8_t(raw[0]), uint8_t(0x34));  // little-endian
    QCOMPARE(uint8_t(raw[1]), uint8_t(0x12));
    QCOMPARE(readIds(path), ids);
    const TokenFile f(path);
    QCOMPARE(f.slice(1, 2)[0], uint16_t(65535));
    QVERIFY_THROWS_EXCEPTION(InputError, f.slice(ids.size() - 1, 2));
    QVERIFY_THROWS_EXCEPTION(InputError, f.checkIds(50257));  // 65535 is not a GPT-2 id
    for (const auto& e : fs::directory_iterator(tmp.path().toStdString()))
      QCOMPARE(e.path().filename().string(), std::string("train.bin"));  // no temp file left
  }

  void tokenFileErrors() {
    QTemporaryDir tmp;
    const fs::path dir = tmp.path().toStdString();
    spit(dir / "odd.bin", std::string("\x01\x00\x02", 3));
    spit(dir / "empty.bin", "");
    std::string what = inputErrorOf([&] { TokenFile f(dir / "odd.bin"); });
    QVERIFY2(what.find((dir / "odd.bin").string()) != std::string::npos, what.c_str());
    QVERIFY2(what.find("size 3 bytes is odd") != std::string::npos, what.c_str());
    what = inputErrorOf([&] { TokenFile f(dir / "empty.bin"); });
    QVERIFY2(what.find((dir / "empty.bin").string() + ": token file is empty") != std::string::npos,
             what.c_str());
    what = inputErrorOf([&] { TokenFile f(dir / "none.bin"); });
    QVERIFY2(what.find("none.bin: token file is missing") != std::string::npos, what.c_str());
    what = inputErrorOf([&] { writeTokenFile(dir / "big.bin", Ids{1, 65536}); });
    QVERIFY2(what.find("token id 65536 at position 1 does not fit in uint16") != std::string::npos,
             what.c_str());
    QVERIFY_THROWS_EXCEPTION(InputError, writeTokenFile(dir / "neg.bin", Ids{-1}));
    QVERIFY(!fs::exists(dir / "big.bin") && !fs::exists(dir / "neg.bin"));
  }

  void prepareDataSplitsDeterministically() {
    QTemporaryDir tmp;
    const fs::path dir = tmp.path().toStdString();
    const std::string a = "The whale is white.\nCall me Ishmael.\n";
    const std::string b = "Another document, with numbers 1 2 3 and a tail";
    spit(dir / "a.txt", a);
    spit(dir / "b.txt", b);
    const auto tok = Tokenizer::gpt2Default();
    Ids all = tok->encode(a);
    all.push_back(50256);  // between documents
    const Ids idsB = tok->encode(b);
    all.insert(all.end(), idsB.begin(), idsB.end());
    const std::vector<std::string> files = {(dir / "a.txt").string(), (dir / "b.txt").string()};

    const PreparedData d1 = prepareData(files, dir / "out1", 0.25);
    const PreparedData d2 = prepareData(files, dir / "out2", 0.25);
    const auto nVal = int64_t(std::llround(all.size() * 0.25));
    QCOMPARE(d1.valTokens, nVal);
    QCOMPARE(d1.trainTokens, int64_t(all.size()) - nVal);
    Ids joined = readIds(dir / "out1/train.bin");
    const Ids val = readIds(dir / "out1/val.bin");
    QCOMPARE(int64_t(val.size()), nVal);
    joined.insert(joined.end(), val.begin(), val.end());
    QCOMPARE(joined, all);  // the val tokens are the last ones, in order
    for (const char* f : {"train.bin", "val.bin", "meta.json"})
      QCOMPARE(slurp(dir / "out1" / f), slurp(dir / "out2" / f));

    const auto meta = nlohmann::json::parse(slurp(dir / "out1/meta.json"));
    QCOMPARE(meta["vocab_size"].get<int>(), 50257);
    QCOMPARE(meta["dtype"].get<std::string>(), std::string("uint16"));
    QCOMPARE(meta["train_tokens"].get<int64_t>(), d1.trainTokens);
    QCOMPARE(meta["val_tokens"].get<int64_t>(), nVal);
    QCOMPARE(meta["val_fraction"].get<double>(), 0.25);
    QCOMPARE(meta["sources"].size(), size_t(2));
    QCOMPARE(meta["sources"][1]["sha256"].get<std::string>(), sha256Hex(b));

    for (double bad : {0.0, 1.0, -0.1}) {
      const std::string what = inputErrorOf([&] { prepareData(files, dir / "bad", bad); });
      QVERIFY2(what.find("val_fraction") != std::string::npos, what.c_str());
    }
    spit(dir / "tiny.txt", "x");
    const std::string what =
        inputErrorOf([&] { prepareData({(dir / "tiny.txt").string()}, dir / "tiny", 0.5); });
    QVERIFY2(what.find("too few to split") != std::string::npos, what.c_str());
  }

  void ensurePreparedTextCaches() {
    QTemporaryDir tmp;
    // Keep the real assets while the data cache goes to a temporary XDG_CACHE_HOME.
    ScopedEnv assets("WB_ASSETS_DIR", assetsDir().string());
    ScopedEnv cache("XDG_CACHE_HOME", tmp.path().toStdString());
    const PreparedData d = ensurePreparedText({"asset:moby-dick"}, 0.1);
    QVERIFY(d.dir.parent_path() == fs::path(tmp.path().toStdString()) / "gpt2-workbench/data");
    // 317,756 tokens in the book (ENV.md); the last round(10%) are validation.
    QCOMPARE(d.trainTokens + d.valTokens, int64_t(317756));
    QCOMPARE(d.valTokens, int64_t(31776));
    QCOMPARE(int64_t(TokenFile(d.dir / "val.bin").size()), d.valTokens);
    const auto stamp = fs::last_write_time(d.dir / "train.bin");
    const PreparedData again = ensurePreparedText({"asset:moby-dick"}, 0.1);
    QVERIFY(again.dir == d.dir);
    QVERIFY(fs::last_write_time(again.dir / "train.bin") == stamp);  // reused, not rewritten
    const PreparedData other = ensurePreparedText({"asset:moby-dick"}, 0.2);
    QVERIFY(other.dir != d.dir);
    QCOMPARE(other.valTokens, int64_t(63551));  // round(317756 * 0.2)
  }

  void cliTokenize() {
    QTemporaryDir tmp;
    const fs::path text = fs::path(tmp.path().toStdString()) / "t.txt";
    spit(text, "Call me Ishmael. Some years ago");
    auto r = wb::test::runProcess(wb::test::benchExe(), {"tokenize", "--text", text.string()});
    QVERIFY2(r.exitCode == 0, r.err.c_str());
    QCOMPARE(nlohmann::json::parse(r.out).get<Ids>(),
             (Ids{14134, 502, 1148, 21720, 417, 13, 2773, 812, 2084}));

    spit(text, "end<|endoftext|>");
    r = wb::test::runProcess(wb::test::benchExe(),
                             {"tokenize", "--allow-special", "--text", text.string()});
    QVERIFY2(r.exitCode == 0, r.err.c_str());
    QCOMPARE(nlohmann::json::parse(r.out).get<Ids>(), (Ids{437, 50256}));

    spit(text, "bad \xff");
    r = wb::test::runProcess(wb::test::benchExe(), {"tokenize", "--text", text.string()});
    QCOMPARE(r.exitCode, 2);
    QVERIFY2(r.err.find(text.string() + ": ") != std::string::npos, r.err.c_str());
    QVERIFY2(r.err.find("not valid UTF-8 at byte 4") != std::string::npos, r.err.c_str());

    r = wb::test::runProcess(wb::test::benchExe(), {"tokenize", "--text", text.string(),
                                                    "--tokenizer", tmp.path().toStdString()});
    QCOMPARE(r.exitCode, 2);
    QVERIFY2(r.err.find("expected vocab.json + merges.txt") != std::string::npos, r.err.c_str());
  }

  void cliPrepareData() {
    QTemporaryDir tmp;
    const fs::path dir = tmp.path().toStdString();
    spit(dir / "a.txt", "It was the best of times, it was the worst of times.");
    const auto r = wb::test::runProcess(
        wb::test::benchExe(), {"prepare-data", "--text", (dir / "a.txt").string(), "--out",
                               (dir / "out").string(), "--val-fraction", "0.2"});
    QVERIFY2(r.exitCode == 0, r.err.c_str());
    const Ids ids = Tokenizer::gpt2Default()->encode(slurp(dir / "a.txt"));
    const auto nVal = int64_t(std::llround(ids.size() * 0.2));
    QCOMPARE(int64_t(TokenFile(dir / "out/val.bin").size()), nVal);
    QVERIFY2(r.out.find("train.bin " + std::to_string(ids.size() - nVal) + " tokens") !=
                 std::string::npos,
             r.out.c_str());
  }
};

QTEST_GUILESS_MAIN(TestTokenData)
#include "test_token_data.moc"
