// GPT-2 tokenizer: known ids, byte-exact round trips, the whole of Moby Dick against
// ids made by an independent implementation, the merge order against a plain transcription
// of encoder.py's bpe() on random vocabularies, special tokens, and errors for malformed files.
#include <QTemporaryDir>
#include <QtTest>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/io/assets.h"
#include "core/io/tokenizer.h"
#include "tests/support/test_support.h"

using namespace wb;
namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;
Q_DECLARE_METATYPE(Ids)
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

// The vocabulary-file spelling of raw bytes (bytes_to_unicode, then UTF-8).
std::string mapped(std::string_view bytes) {
  std::string s;
  for (unsigned char b : bytes) {
    const char32_t c = gpt2ByteToUnicode(b);
    if (c < 0x80) {
      s += char(c);
    } else {
      s += char(0xC0 | (c >> 6));
      s += char(0x80 | (c & 0x3F));
    }
  }
  return s;
}

// A toy byte-level vocabulary: the 256 byte tokens (ids 0..255) and `extra` merged tokens.
struct ToyBpe {
  std::vector<std::string> tokens;                          // raw bytes by id
  std::vector<std::pair<std::string, std::string>> merges;  // raw bytes, by rank
  ToyBpe() {
    for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, char(b)));
  }
  void addMerge(const std::string& a, const std::string& b) {
    merges.push_back({a, b});
    if (std::find(tokens.begin(), tokens.end(), a + b) == tokens.end()) tokens.push_back(a + b);
  }
  void write(const fs::path& dir) const {
    nlohmann::json vocab = nlohmann::json::object();
    for (size_t i = 0; i < tokens.size(); ++i) vocab[mapped(tokens[i])] = i;
    spit(dir / "vocab.json", vocab.dump());
    std::string m = "#version: 0.2\n";
    for (const auto& [a, b] : merges) m += mapped(a) + " " + mapped(b) + "\n";
    spit(dir / "merges.txt", m);
  }
  // encoder.py's bpe() transcribed literally: find the lowest-ranked pair, merge every
  // occurrence left to right, repeat. The reference for the heap-based implementation.
  Ids encodeWord(const std::string& word) const {
    std::map<std::pair<std::string, std::string>, size_t> rank;
    for (size_t r = 0; r < merges.size(); ++r) rank.emplace(merges[r], r);
    std::vector<std::string> w;
    for (char c : word) w.push_back(std::string(1, c));
    while (w.size() > 1) {
      const std::pair<std::string, std::string>* best = nullptr;
      size_t bestRank = SIZE_MAX;
      for (size_t i = 0; i + 1 < w.size(); ++i) {
        const auto it = rank.find({w[i], w[i + 1]});
        if (it != rank.end() && it->second < bestRank) bestRank = it->second, best = &it->first;
      }
      if (!best) break;
      std::vector<std::string> next;
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == best->first && w[i + 1] == best->second) {
          next.push_back(w[i] + w[i + 1]);
          i += 2;
        } else {
          next.push_back(w[i++]);
        }
      }
      w = std::move(next);
    }
    Ids ids;
    for (const auto& s : w)
      ids.push_back(int32_t(std::find(tokens.begin(), tokens.end(), s) - tokens.begin()));
    return ids;
  }
};

// Writes a tokenizer folder from the 256 byte tokens plus `extraVocab` (a JSON fragment
// appended to the object) and the given merges text.
fs::path writeFiles(const QTemporaryDir& tmp, const std::string& vocabText,
                    const std::string& mergesText) {
  const fs::path dir = tmp.path().toStdString();
  spit(dir / "vocab.json", vocabText);
  spit(dir / "merges.txt", mergesText);
  return dir;
}
std::string byteVocab(const std::string& extra = {}) {
  nlohmann::json v = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) v[mapped(std::string(1, char(b)))] = b;
  std::string s = v.dump();
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + extra + "}";
  return s;
}

}  // namespace

class TestTokenizer : public QObject {
  Q_OBJECT
  std::shared_ptr<const Tokenizer> gpt2_;
  std::string moby_;

 private Q_SLOTS:
  void initTestCase() {
    gpt2_ = Tokenizer::gpt2Default();  // bootstrap ran (make test guarantees it)
    moby_ = slurp(resolveAssetRef("asset:moby-dick"));
    QCOMPARE(moby_.size(), size_t(1204997));
  }

  void vocabularyShape() {
    QCOMPARE(gpt2_->vocabSize(), 50257);
    QCOMPARE(gpt2_->mergeCount(), size_t(50000));
    QCOMPARE(gpt2_->eotId(), 50256);
    QCOMPARE(gpt2_->idToToken(995), std::string("Ġworld"));
    QCOMPARE(gpt2_->idToBytes(995), std::string_view(" world"));
    QCOMPARE(gpt2_->tokenToId("Hello"), 15496);
    QCOMPARE(gpt2_->tokenToId("no such token"), -1);
    QVERIFY_THROWS_EXCEPTION(InputError, gpt2_->idToToken(50257));
  }

  void knownIds_data() {
    QTest::addColumn<std::string>("text");
    QTest::addColumn<Ids>("ids");
    QTest::newRow("hello") << std::string("Hello world") << Ids{15496, 995};
    QTest::newRow("ishmael") << std::string("Call me Ishmael. Some years ago")
                             << Ids{14134, 502, 1148, 21720, 417, 13, 2773, 812, 2084};
    QTest::newRow("empty") << std::string() << Ids{};
    // "<|endoftext|>" as ordinary text by default, as encoder.py does.
    QTest::newRow("eot-as-text") << std::string("<|endoftext|>")
                                 << Ids{27, 91, 437, 1659, 5239, 91, 29};
  }
  void knownIds() {
    QFETCH(std::string, text);
    QFETCH(Ids, ids);
    QCOMPARE(gpt2_->encode(text), ids);
  }

  void roundTrip_data() {
    QTest::addColumn<std::string>("text");
    QTest::newRow("unicode") << std::string("naïve café — Ærøskøbing, Ελληνικά, 日本語のテキスト");
    QTest::newRow("emoji") << std::string("emoji 🐋🐳 and ZWJ 👩‍👩‍👧 family");
    QTest::newRow("digits") << std::string("1234567890 3.14159 1,000,000 007");
    QTest::newRow("spaces") << std::string("  multiple   spaces\n\n");
    QTest::newRow("contractions") << std::string(
        "I'm sure you'll say it's what we'd've done, they're; I've");
    QTest::newRow("whitespace-mix")
        << std::string("\t tab\r\n crlf \u00a0nbsp \u3000ideographic  ");
    QTest::newRow("long-run") << std::string(5000, '=') + std::string(3000, ' ') + "x";
  }
  void roundTrip() {
    QFETCH(std::string, text);
    QCOMPARE(gpt2_->decode(gpt2_->encode(text)), text);
  }

  void mobyDickRoundTrip() { QVERIFY(gpt2_->decode(gpt2_->encode(moby_)) == moby_); }

  // The reference: npm gpt-3-encoder@1.1.4 (a JavaScript port of OpenAI's encoder.py) run
  // over the whole book by tests/reference/gpt3_encoder_ids.js, ids stored as uint16 LE.
  void mobyDickMatchesGpt3Encoder() {
    const std::string raw = slurp(wb::test::sourceDir() / "tests/data/moby-dick.gpt2-ids.u16");
    QCOMPARE(raw.size() % 2, size_t(0));
    Ids expected(raw.size() / 2);
    for (size_t i = 0; i < expected.size(); ++i)
      expected[i] = uint8_t(raw[2 * i]) | (uint8_t(raw[2 * i + 1]) << 8);
    QCOMPARE(expected.size(), size_t(317756));

    // Speed is a benchmark (`gpt2-bench tokenize --throughput`, docs/PERF.md), not a
    // timed test: a loaded CI machine must not turn it red.
    const Ids ids = gpt2_->encode(moby_);
    QCOMPARE(ids.size(), expected.size());
    const auto mismatch = std::mismatch(ids.begin(), ids.end(), expected.begin());
    if (mismatch.first != ids.end()) {
      const size_t at = size_t(mismatch.first - ids.begin());
      QFAIL(qPrintable(QString("first difference at token %1: %2, reference %3")
                           .arg(at)
                           .arg(*mismatch.first)
                           .arg(*mismatch.second)));
    }
  }

  void specialTokens() {
    const std::string text = "one<|endoftext|>two";
    const Ids allowed = gpt2_->encode(text, {SpecialTokens::kAllow});
    QCOMPARE(allowed, (Ids{505, 50256, 11545}));
    QCOMPARE(gpt2_->decode(allowed), text);
    const Ids asText = gpt2_->encode(text);
    QVERIFY(std::find(asText.begin(), asText.end(), 50256) == asText.end());
    QCOMPARE(gpt2_->decode(asText), text);
    QCOMPARE(gpt2_->encode("<|endoftext|><|endoftext|>", {SpecialTokens::kAllow}),
             (Ids{50256, 50256}));
    try {
      gpt2_->encode(text, {SpecialTokens::kReject});
      QFAIL("expected InputError");
    } catch (const InputError& e) {
      QVERIFY(std::string(e.what()).find("<|endoftext|> at byte 3") != std::string::npos);
    }
    QCOMPARE(gpt2_->encode("no special here", {SpecialTokens::kReject}),
             gpt2_->encode("no special here"));
  }

  void decodeIsByteExact() {
    // "€" is three bytes; its first token alone decodes to a partial UTF-8 sequence.
    const Ids ids = gpt2_->encode("€");
    std::string joined;
    for (int32_t id : ids) joined += gpt2_->decode(Ids{id});
    QCOMPARE(joined, std::string("€"));
    QVERIFY_THROWS_EXCEPTION(InputError, gpt2_->decode(Ids{50257}));
    QVERIFY_THROWS_EXCEPTION(InputError, gpt2_->decode(Ids{-1}));
  }

  void invalidUtf8IsAnError() {
    try {
      gpt2_->encode(std::string("ok \xff bad"));
      QFAIL("expected InputError");
    } catch (const InputError& e) {
      QVERIFY2(std::string(e.what()).find("not valid UTF-8 at byte 3") != std::string::npos,
               e.what());
    }
  }

  void fromFolderPicksEitherPair() {
    QTemporaryDir hf, openai;
    const fs::path assets = assetPath("encoder.json").parent_path();
    fs::copy_file(assets / "encoder.json", fs::path(hf.path().toStdString()) / "vocab.json");
    fs::copy_file(assets / "vocab.bpe", fs::path(hf.path().toStdString()) / "merges.txt");
    fs::copy_file(assets / "encoder.json", fs::path(openai.path().toStdString()) / "encoder.json");
    fs::copy_file(assets / "vocab.bpe", fs::path(openai.path().toStdString()) / "vocab.bpe");
    const std::string text = moby_.substr(0, 20000);
    const Ids expected = gpt2_->encode(text);
    QCOMPARE(Tokenizer::fromFolder(hf.path().toStdString()).encode(text), expected);
    QCOMPARE(Tokenizer::fromFolder(openai.path().toStdString()).encode(text), expected);
    QTemporaryDir empty;
    fs::remove(fs::path(openai.path().toStdString()) / "vocab.bpe");
    for (const auto& [dir, needle] :
         {std::pair{&empty, std::string("expected vocab.json + merges.txt")},
          std::pair{&openai, std::string("vocab.bpe is missing")}}) {
      try {
        Tokenizer::fromFolder(dir->path().toStdString());
        QFAIL("expected InputError");
      } catch (const InputError& e) {
        QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
      }
    }
  }

  // Words over a 3-letter alphabet with random vocabularies, ranks in training order and
  // shuffled (where a pair created mid-pass can outrank the pass's own pair).
  void mergeOrderMatchesEncoderPy_data() {
    QTest::addColumn<bool>("shuffled");
    QTest::newRow("training-order") << false;
    QTest::newRow("shuffled-ranks") << true;
  }
  void mergeOrderMatchesEncoderPy() {
    QFETCH(bool, shuffled);
    std::mt19937 rng(shuffled ? 7 : 3);
    for (int round = 0; round < 20; ++round) {
      ToyBpe bpe;
      std::vector<std::string> pool = {"a", "b", "c"};
      std::set<std::pair<std::string, std::string>> used;
      while (bpe.merges.size() < 40) {
        const std::string& x = pool[rng() % pool.size()];
        const std::string& y = pool[rng() % pool.size()];
        if (x.size() + y.size() > 8 || !used.insert({x, y}).second) continue;
        const std::string xy = x + y;  // copy: push_back may move the pool
        bpe.addMerge(x, y);
        if (std::find(pool.begin(), pool.end(), xy) == pool.end()) pool.push_back(xy);
      }
      if (shuffled) std::shuffle(bpe.merges.begin(), bpe.merges.end(), rng);
      QTemporaryDir tmp;
      bpe.write(tmp.path().toStdString());
      const Tokenizer tok = Tokenizer::fromFolder(tmp.path().toStdString());
      for (int w = 0; w < 200; ++w) {
        std::string word(1 + rng() % 40, 'a');
        for (char& ch : word) ch = char('a' + rng() % 3);
        QCOMPARE(tok.encode(word), bpe.encodeWord(word));
      }
    }
  }

  void malformedFiles_data() {
    QTest::addColumn<std::string>("vocab");  // "<none>": file not written
    QTest::addColumn<std::string>("merges");
    QTest::addColumn<std::string>("file");  // which file the message must name
    QTest::addColumn<std::string>("needle");
    const auto row = [](const char* name, const std::string& vocab, const std::string& merges,
                        const std::string& file, const std::string& needle) {
      QTest::newRow(name) << vocab << merges << file << needle;
    };
    const std::string okMerges = "#version: 0.2\n";
    const std::string a = mapped("a"), b = mapped("b");
    row("missing-vocab", "<none>", okMerges, "vocab.json", "missing vocabulary file");
    row("missing-merges", byteVocab(), "<none>", "merges.txt", "missing merges file");
    row("not-json", "{\"a\": 1,\n \"b\" 2}", okMerges, "vocab.json:2", "not valid JSON");
    row("not-object", "[1, 2, 3]", okMerges, "vocab.json", "expected a JSON object");
    row("empty", "{}", okMerges, "vocab.json", "empty vocabulary");
    row("string-id", byteVocab("\"xy\": \"256\""), okMerges, "vocab.json",
        "token \"xy\": id \"256\" is not an integer");
    row("float-id", byteVocab("\"xy\": 256.5"), okMerges, "vocab.json", "is not an integer");
    row("duplicate-id", byteVocab("\"xy\": 7"), okMerges, "vocab.json", "duplicate id 7");
    row("sparse-id", byteVocab("\"xy\": 900"), okMerges, "vocab.json", "id 900 is outside 0..256");
    row("outside-alphabet", byteVocab("\"\xe2\x82\xac\": 256"), okMerges, "vocab.json",
        "has U+20AC, outside GPT-2's byte alphabet");
    row("missing-byte", "{\"" + a + "\": 0}", okMerges, "vocab.json", "no token for byte 0x00");
    row("one-symbol", byteVocab("\"ab\": 256"), okMerges + a + " " + b + "\nab\n", "merges.txt:3",
        "expected two symbols separated by a space, found 1");
    row("three-symbols", byteVocab("\"ab\": 256"), okMerges + a + " " + b + " " + a + "\n",
        "merges.txt:2", "found 3");
    row("unknown-symbol", byteVocab("\"ab\": 256"), okMerges + a + " " + b + "\nab zz\n",
        "merges.txt:3", "merge symbol \"zz\" is not in the vocabulary");
    row("result-unknown", byteVocab(), okMerges + a + " " + b + "\n", "merges.txt:2",
        "merge result \"ab\" is not in the vocabulary");
    row("duplicate-merge", byteVocab("\"ab\": 256"),
        okMerges + a + " " + b + "\n" + a + " " + b + "\n", "merges.txt:3",
        "duplicate merge \"a b\" (first on line 2)");
  }
  void malformedFiles() {
    QFETCH(std::string, vocab);
    QFETCH(std::string, merges);
    QFETCH(std::string, file);
    QFETCH(std::string, needle);
    QTemporaryDir tmp;
    const fs::path dir = tmp.path().toStdString();
    if (vocab != "<none>") spit(dir / "vocab.json", vocab);
    if (merges != "<none>") spit(dir / "merges.txt", merges);
    try {
      Tokenizer::fromHf(dir / "vocab.json", dir / "merges.txt");
      QFAIL("expected InputError");
    } catch (const InputError& e) {
      const std::string what = e.what();
      QVERIFY2(what.find((dir / file).string()) != std::string::npos, what.c_str());
      QVERIFY2(what.find(needle) != std::string::npos, what.c_str());
    }
  }

  void mergesHeaderOnlyOnFirstLine() {
    // A merge whose first symbol starts with '#' (8 of GPT-2's do) is a merge, not a comment.
    QTemporaryDir tmp;
    writeFiles(tmp, byteVocab("\"##\": 256"), "#version: 0.2\n# #\n");
    const Tokenizer tok = Tokenizer::fromFolder(tmp.path().toStdString());
    QCOMPARE(tok.mergeCount(), size_t(1));
    QCOMPARE(tok.encode("a ##"), (Ids{'a', ' ', 256}));
    // GPT-2's own: vocab.bpe line 1981 is "# #" -> "##" (id 2235).
    QCOMPARE(gpt2_->encode("##"), Ids{2235});
  }
};

QTEST_GUILESS_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
