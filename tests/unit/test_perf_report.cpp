// Perf plumbing without LibTorch: MFU arithmetic and its clamp (exact arithmetic,
// 1e-9 relative), NVML's "n/a" when the driver is absent, and the JSON / Markdown
// printers (structure and values round-trip exactly).
#include <QTemporaryDir>
#include <QtTest>

#include <filesystem>
#include <fstream>

#include "core/bench/mfu.h"
#include "core/bench/nvml.h"
#include "core/bench/perf_report.h"

using namespace wb;

class TestPerfReport : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void flopsPerTokenOfGpt2Small() {
    Gpt2Config c;  // GPT-2 124M
    const int64_t n = c.parameterCount();
    QCOMPARE(n, int64_t(124439808));
    // 6 (N - wpe) + 12 L T d = 6 * 123653376 + 12 * 12 * 1024 * 768.
    const double expected = 6.0 * 123653376.0 + 113246208.0;
    QVERIFY(std::fabs(gpt2TrainFlopsPerToken(c, n, 1024) - expected) <= 1e-9 * expected);
  }
  void mfuBelowPeakIsPlainRatio() {
    const Mfu m = modelFlopsUtilisation(400e12, 800e12, "peak");
    QVERIFY(std::fabs(m.percent - 50.0) < 1e-9);
    QVERIFY(!m.clamped);
    QVERIFY(m.warning.empty());
  }
  void mfuAbovePeakIsClampedWithWarning() {
    const Mfu m = modelFlopsUtilisation(1200e12, 989.4e12, "the datasheet peak");
    QCOMPARE(m.percent, 100.0);
    QVERIFY(m.clamped);
    QVERIFY(QString::fromStdString(m.warning).contains("the datasheet peak"));
    QVERIFY(QString::fromStdString(m.warning).contains("121.3%"));
  }
  void mfuNeedsPositivePeak() {
    bool threw = false;
    try {
      modelFlopsUtilisation(1.0, 0.0, "zero");
    } catch (const std::exception&) {
      threw = true;
    }
    QVERIFY(threw);
  }
  void nvmlReportsNotAvailableWithoutDriver() {
    std::string why;
    const auto info = queryNvml("", 0, &why);
    if (info) {
      // A machine with a driver: the numbers must be sane instead.
      QVERIFY(info->totalMb > 0 && info->usedMb >= 0 && info->usedMb <= info->totalMb);
      QVERIFY(nvmlUsedText(info) != "n/a");
    } else {
      QVERIFY(!why.empty());
      QCOMPARE(nvmlUsedText(info), std::string("n/a"));
    }
  }
  void printersKeepEverything() {
    PerfResult r;
    r.kind = "decode";
    r.env = {"gpt2-bench perf decode --new-tokens 8", "cuda:0", "Test GPU", "1.2.3", "2.11.0", "13.0", "abc1234",
             "2026-11-26T10:00:00Z"};
    r.config = {{"dtype", "fp16"}};
    PerfRow a;
    a.label = "eager";
    a.metrics = {{"us_per_token", {100.0, 110.0, 90.0}}};
    a.values["mem_peak_mb"] = 512.5;
    PerfRow b;
    b.label = "cuda graph";
    b.metrics = {{"us_per_token", {20.0, 22.0, 18.0}}};
    b.values["device_used_mb"] = "n/a";
    r.rows = {a, b};
    r.summary["graph_speedup_vs_eager"] = 5.0;
    r.warnings = {"a warning"};
    const auto j = perfJson(r);
    QCOMPARE(j["kind"].get<std::string>(), std::string("decode"));
    QCOMPARE(j["command"].get<std::string>(), r.env.command);
    QCOMPARE(j["device_name"].get<std::string>(), std::string("Test GPU"));
    QCOMPARE(j["rows"].size(), size_t(2));
    QCOMPARE(j["rows"][0]["metrics"]["us_per_token"]["mean"].get<double>(), 100.0);
    QCOMPARE(j["rows"][0]["metrics"]["us_per_token"]["std"].get<double>(), 10.0);  // sample std
    QCOMPARE(j["rows"][1]["values"]["device_used_mb"].get<std::string>(), std::string("n/a"));
    const QString md = QString::fromStdString(perfMarkdown(r));
    QVERIFY(md.contains("| eager | 3 | 100.0 ± 10.0 |"));
    QVERIFY(md.contains("| cuda graph | 3 | 20.0 ± 2.0 |"));
    QVERIFY(md.contains("`gpt2-bench perf decode --new-tokens 8`"));
    QVERIFY(md.contains("graph_speedup_vs_eager: 5.00"));
    QVERIFY(md.contains("**warning:** a warning"));
    QTemporaryDir dir;
    const auto files = writePerfResult(r, dir.path().toStdString());
    QCOMPARE(files.size(), size_t(2));
    QVERIFY(std::filesystem::path(files[0]).filename() == "perf-decode.json");
    std::ifstream in(files[0]);
    const auto back = nlohmann::json::parse(in);
    QCOMPARE(back, j);
    QVERIFY(std::filesystem::exists(files[1]));
  }
  void commandLineQuotesSpaces() {
    const char* argv[] = {"gpt2-bench", "perf", "train", "--out", "a b.json"};
    QCOMPARE(joinCommandLine(5, argv), std::string("gpt2-bench perf train --out 'a b.json'"));
  }
};

QTEST_APPLESS_MAIN(TestPerfReport)
#include "test_perf_report.moc"
