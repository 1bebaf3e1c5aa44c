// safetensors reader/writer: round trip of every dtype, the header's 8-byte padding,
// file order, and one malformed file per rule of the format, each of which must be an
// InputError naming the file and (where there is one) the tensor.
#include <QTemporaryDir>
#include <QtTest>
#include <cstring>
#include <fstream>

#include "core/errors.h"
#include "core/io/safetensors.h"

using namespace wb;
namespace fs = std::filesystem;

namespace {

// A file from raw parts: 8-byte little-endian header length, header text, data bytes.
QByteArray rawFile(const std::string& header, size_t dataBytes, std::optional<uint64_t> n = {}) {
  const uint64_t len = n.value_or(header.size());
  QByteArray b(reinterpret_cast<const char*>(&len), 8);
  b.append(header.data(), static_cast<qsizetype>(header.size()));
  for (size_t i = 0; i < dataBytes; ++i) b.append(static_cast<char>(i & 0x7f));
  return b;
}

void writeBytes(const fs::path& p, const QByteArray& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(b.constData(), b.size());
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// One tensor "h.0.w" of F32 [2] at [0, 8] followed by `extra` JSON members.
std::string oneTensor(const std::string& entry) {
  return "{\"h.0.w\":" + entry + "}";
}

}  // namespace

class TestSafetensors : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void roundTripEveryDtype_data() {
    QTest::addColumn<QString>("dtype");
    for (const char* d : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"})
      QTest::newRow(d) << QString(d);
  }
  void roundTripEveryDtype() {
    QFETCH(QString, dtype);
    const auto dt = parseDtype(dtype.toStdString());
    QVERIFY(dt.has_value());
    QCOMPARE(std::string(dtypeName(*dt)), dtype.toStdString());
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "x.safetensors";
    const std::vector<int64_t> shape = {3, 5};
    std::vector<uint8_t> a(15 * dtypeSize(*dt)), b(7 * dtypeSize(*dt));
    for (size_t i = 0; i < a.size(); ++i)
      a[i] = static_cast<uint8_t>(*dt == StDtype::BOOL ? i % 2 : i * 7 + 1);
    for (size_t i = 0; i < b.size(); ++i)
      b[i] = static_cast<uint8_t>(*dt == StDtype::BOOL ? 1 : 255 - i);
    // A scalar, an empty tensor and a name that sorts before the others: order is kept.
    const uint8_t scalar[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    writeSafetensors(path,
                     {{"z.first", *dt, shape, a.data(), a.size()},
                      {"a.second", *dt, {7}, b.data(), b.size()},
                      {"empty", *dt, {0, 4}, nullptr, 0},
                      {"scalar", *dt, {}, scalar, dtypeSize(*dt)}},
                     {{"format", "pt"}, {"note", "ünïcode"}});
    const auto f = SafetensorsFile::open(path);
    QCOMPARE(f.names(), (std::vector<std::string>{"z.first", "a.second", "empty", "scalar"}));
    QCOMPARE(f.metadata().at("format"), std::string("pt"));
    QCOMPARE(f.metadata().at("note"), std::string("ünïcode"));
    QCOMPARE(f.info("z.first").dtype, *dt);
    QCOMPARE(f.info("z.first").shape, shape);
    QCOMPARE(f.info("z.first").numel(), int64_t(15));
    QCOMPARE(f.info("empty").shape, (std::vector<int64_t>{0, 4}));
    QCOMPARE(f.info("empty").bytes(), uint64_t(0));
    QCOMPARE(f.info("scalar").numel(), int64_t(1));
    const auto sa = f.bytes("z.first");
    QCOMPARE(sa.size(), a.size());
    QVERIFY(std::memcmp(sa.data(), a.data(), a.size()) == 0);
    const auto sb = f.bytes("a.second");
    QVERIFY(std::memcmp(sb.data(), b.data(), b.size()) == 0);
    QVERIFY(std::memcmp(f.bytes("scalar").data(), scalar, dtypeSize(*dt)) == 0);
  }

  void headerIsPaddedToEight() {
    QTemporaryDir tmp;
    // Names of growing length move the unpadded header size through every residue mod 8.
    for (int len = 1; len <= 8; ++len) {
      const fs::path path = fs::path(tmp.path().toStdString()) / ("p" + std::to_string(len));
      const float v = 1.5f;
      writeSafetensors(path, {{std::string(len, 'n'), StDtype::F32, {1}, &v, 4}});
      const std::string bytes = slurp(path);
      uint64_t n = 0;
      std::memcpy(&n, bytes.data(), 8);
      QCOMPARE(n % 8, uint64_t(0));
      QCOMPARE(bytes.size(), size_t(8 + n + 4));
      const std::string header = bytes.substr(8, n);
      const auto end = header.find_last_not_of(' ');
      QCOMPARE(header[end], '}');
      QVERIFY(n - (end + 1) < 8);  // at most 7 spaces of padding
      const auto f = SafetensorsFile::open(path);
      QCOMPARE(f.headerSize(), n);
      float back = 0;
      std::memcpy(&back, f.bytes(std::string(len, 'n')).data(), 4);
      QCOMPARE(back, v);
      // The data starts 8-byte aligned in the mapping, so tensors can be used in place.
      QCOMPARE(reinterpret_cast<uintptr_t>(f.bytes(std::string(len, 'n')).data()) % 8,
               uintptr_t(0));
    }
  }

  void namesFollowDataOrderNotHeaderOrder() {
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "order.safetensors";
    writeBytes(path, rawFile("{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
                             "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                             "\"__metadata__\":{\"k\":\"v\"}}",
                             4));
    const auto f = SafetensorsFile::open(path);
    QCOMPARE(f.names(), (std::vector<std::string>{"a", "b"}));
    QCOMPARE(static_cast<int>(f.bytes("b")[0]), 2);
    QCOMPARE(f.metadata().size(), size_t(1));
  }

  void emptyFileOfNoTensorsIsValid() {
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "none.safetensors";
    writeSafetensors(path, {});
    const auto f = SafetensorsFile::open(path);
    QVERIFY(f.names().empty());
    QCOMPARE(f.fileSize(), uint64_t(16));  // 8 + "{}" padded to 8
  }

  void unknownNameAndMissingFile() {
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "one.safetensors";
    const int32_t v = 7;
    writeSafetensors(path, {{"w", StDtype::I32, {1}, &v, 4}});
    const auto f = SafetensorsFile::open(path);
    try {
      (void)f.info("nope");
      QFAIL("expected InputError");
    } catch (const InputError& e) {
      QCOMPARE(e.where(), path.string());
      QVERIFY(std::string(e.what()).find("\"nope\"") != std::string::npos);
    }
    QVERIFY_THROWS_EXCEPTION(InputError, SafetensorsFile::open(path.string() + ".missing"));
  }

  void writerRejectsInconsistentEntries() {
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "bad.safetensors";
    const float v[2] = {1, 2};
    auto expectError = [&](const std::vector<StEntry>& entries, const char* needle) {
      try {
        writeSafetensors(path, entries);
        QFAIL("expected InputError");
      } catch (const InputError& e) {
        QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
      }
      QVERIFY(!fs::exists(path));  // checked before any byte is written
    };
    expectError({{"w", StDtype::F32, {3}, v, 8}}, "\"w\"");
    expectError({{"w", StDtype::F32, {2}, v, 8}, {"w", StDtype::F32, {2}, v, 8}}, "twice");
    expectError({{"__metadata__", StDtype::F32, {2}, v, 8}}, "reserved");
    expectError({{"neg", StDtype::F32, {-2}, v, 8}}, "negative");
    const auto entries = fs::directory_iterator(tmp.path().toStdString());
    QCOMPARE(std::distance(fs::begin(entries), fs::end(entries)), 0L);  // no temp file left
  }

  void overwriteReplacesAtomically() {
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "w.safetensors";
    const double a = 1.0, b = 2.0;
    writeSafetensors(path, {{"x", StDtype::F64, {}, &a, 8}});
    const auto old = SafetensorsFile::open(path);  // keeps the old inode mapped
    writeSafetensors(path, {{"x", StDtype::F64, {}, &b, 8}});
    double seen = 0;
    std::memcpy(&seen, old.bytes("x").data(), 8);
    QCOMPARE(seen, 1.0);  // the rename left the old mapping intact
    std::memcpy(&seen, SafetensorsFile::open(path).bytes("x").data(), 8);
    QCOMPARE(seen, 2.0);
  }

  void malformedFilesAreRejected_data() {
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<QString>("expect");  // part of the message
    QTest::addColumn<QString>("tensor");  // must be named in the message; "" when none
    const std::string good = "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    const QByteArray valid = rawFile(oneTensor(good), 8);

    QTest::newRow("empty file") << QByteArray() << "too short"
                                << "";
    QTest::newRow("shorter than 8 bytes") << QByteArray("\x02\0\0\0\0", 5) << "too short"
                                          << "";
    QTest::newRow("truncated data") << valid.left(valid.size() - 3) << "past the data buffer"
                                    << "h.0.w";
    QTest::newRow("header length over 100 MB")
        << rawFile(oneTensor(good), 8, 100'000'001) << "exceeds the format's limit"
        << "";
    QTest::newRow("header length beyond file end")
        << rawFile(oneTensor(good), 8, 4096) << "runs past the end of the file"
        << "";
    QTest::newRow("header not JSON") << rawFile("{\"h.0.w\": nope}", 0) << "not valid JSON"
                                     << "";
    QTest::newRow("header JSON not an object")
        << rawFile("[{\"h.0.w\":1}]", 0) << "does not start with '{'"
        << "";
    QTest::newRow("header with leading space") << rawFile(" {}", 0) << "does not start with '{'"
                                               << "";
    QTest::newRow("JSON then garbage") << rawFile("{} x", 0) << "not valid JSON"
                                       << "";
    QTest::newRow("invalid UTF-8 in a name")
        << rawFile("{\"h\xff\":" + good + "}", 8) << "not valid JSON"
        << "";
    QTest::newRow("duplicate key")
        << rawFile("{\"h.0.w\":" + good + ",\"h.0.w\":" + good + "}", 8) << "twice"
        << "h.0.w";
    QTest::newRow("unknown dtype")
        << rawFile(oneTensor("{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}"), 2)
        << "unsupported dtype"
        << "h.0.w";
    QTest::newRow("dtype not a string")
        << rawFile(oneTensor("{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}"), 8)
        << "unsupported dtype"
        << "h.0.w";
    QTest::newRow("shape/size mismatch")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,8]}"), 8)
        << "needs 24 bytes"
        << "h.0.w";
    QTest::newRow("overlapping offsets")
        << rawFile(
               "{\"a.x\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
               "\"h.0.w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}",
               12)
        << "overlap"
        << "h.0.w";
    QTest::newRow("hole between tensors")
        << rawFile(
               "{\"a.x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"h.0.w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}",
               12)
        << "hole of 4 bytes"
        << "h.0.w";
    QTest::newRow("first tensor not at 0")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}"), 12)
        << "hole of 4 bytes"
        << "h.0.w";
    QTest::newRow("trailing bytes") << rawFile(oneTensor(good), 12) << "4 trailing bytes"
                                    << "h.0.w";
    QTest::newRow("offsets past the buffer")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}"), 8)
        << "past the data buffer"
        << "h.0.w";
    QTest::newRow("shape product overflows int64")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                             "\"data_offsets\":[0,8]}"),
                   8)
        << "overflows"
        << "h.0.w";
    QTest::newRow("byte count overflows int64")
        << rawFile(oneTensor("{\"dtype\":\"F64\",\"shape\":[2305843009213693952],"
                             "\"data_offsets\":[0,8]}"),
                   8)
        << "overflows"
        << "h.0.w";
    QTest::newRow("dimension above int64")
        << rawFile(oneTensor("{\"dtype\":\"U8\",\"shape\":[18446744073709551615],"
                             "\"data_offsets\":[0,8]}"),
                   8)
        << "too large"
        << "h.0.w";
    QTest::newRow("negative shape")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}"), 8)
        << "negative"
        << "h.0.w";
    QTest::newRow("fractional shape")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}"), 8)
        << "non-negative integer"
        << "h.0.w";
    QTest::newRow("begin > end")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}"), 8)
        << "begin > end"
        << "h.0.w";
    QTest::newRow("missing data_offsets")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[2]}"), 8) << "missing \"data_offsets\""
        << "h.0.w";
    QTest::newRow("three data_offsets")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}"), 8)
        << "[begin, end]"
        << "h.0.w";
    QTest::newRow("unknown entry key")
        << rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}"), 8)
        << "unknown key \"x\""
        << "h.0.w";
    QTest::newRow("entry not an object") << rawFile(oneTensor("[1,2]"), 0) << "must be an object"
                                         << "h.0.w";
    QTest::newRow("metadata value not a string")
        << rawFile("{\"__metadata__\":{\"format\":1}}", 0) << "must be a string"
        << "";
    QTest::newRow("metadata not an object")
        << rawFile("{\"__metadata__\":\"pt\"}", 0) << "must be an object of strings"
        << "";
  }
  void malformedFilesAreRejected() {
    QFETCH(QByteArray, bytes);
    QFETCH(QString, expect);
    QFETCH(QString, tensor);
    QTemporaryDir tmp;
    const fs::path path = fs::path(tmp.path().toStdString()) / "bad-file.safetensors";
    writeBytes(path, bytes);
    try {
      (void)SafetensorsFile::open(path);
      QFAIL("expected InputError");
    } catch (const InputError& e) {
      const std::string msg = e.what();
      QCOMPARE(e.where(), path.string());
      QVERIFY2(msg.find("bad-file.safetensors") != std::string::npos, msg.c_str());
      QVERIFY2(msg.find(expect.toStdString()) != std::string::npos, msg.c_str());
      if (!tensor.isEmpty())
        QVERIFY2(msg.find("\"" + tensor.toStdString() + "\"") != std::string::npos, msg.c_str());
    }
  }
};

QTEST_APPLESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
