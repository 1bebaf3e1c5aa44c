// Benchmark sweep and its printers (issue 6): a small sweep over two weight formats
// (fp32 and int4-g32-asym through the dequantizing matmul) x batch x seq_len x backend gives
// n = repeats samples per metric and point, and its Markdown, CSV and JSON agree on n,
// mean and std for every point (CSV vs JSON exactly, via %.17g; Markdown to its 2
// printed decimals, i.e. within 0.005 + 1e-9).
#include <sstream>

#include "core/bench/bench_report.h"
#include "core/bench/benchmark.h"
#include "core/bench/stats.h"
#include "core/bench/weight_formats.h"
#include "tests/support/torch_support.h"

#include <QtTest>

using namespace wb;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : s) {
    if (c == '"') quoted = !quoted;
    else if (c == sep && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else cur += c;
  }
  out.push_back(cur);
  return out;
}

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(' '), b = s.find_last_not_of(' ');
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

class TestBenchmark : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase() { torch::set_num_threads(1); }

  void sweepFormatsAgree() {
    Gpt2Config c;
    c.vocabSize = 64;
    c.nPositions = 64;
    c.nEmbd = 32;
    c.nLayer = 2;
    c.nHead = 2;
    torch::manual_seed(1);
    Gpt2 model(c);
    SweepOptions o;
    o.batchSizes = {1, 2};
    o.seqLens = {8, 16};
    o.backends = {AttentionBackend::Math, AttentionBackend::Flash};
    o.decodeTokens = 3;
    o.warmup = 1;
    o.repeats = 3;
    int64_t progressCalls = 0;
    std::vector<BenchPoint> points;
    for (const std::string format : {"fp32", "int4-g32-asym"}) {
      auto v = makeWeightVariant(model, format, torch::kFloat32, torch::kCPU, "fp32");
      o.weights = v.label;
      const auto part = runSweep(v.model, o, nullptr, [&](int64_t, int64_t total) {
        ++progressCalls;
        QCOMPARE(total, int64_t(8));
      });
      points.insert(points.end(), part.begin(), part.end());
    }
    QCOMPARE(points.size(), size_t(16));
    QCOMPARE(progressCalls, int64_t(16));
    QCOMPARE(points.front().weights, std::string("fp32"));
    QVERIFY(points.back().weights.starts_with("int4-g32-asym"));
    for (const auto& p : points) {
      QCOMPARE(p.metrics.size(), size_t(5));
      for (const auto& m : p.metrics) {
        QCOMPARE(m.samples.size(), size_t(3));
        for (double v : m.samples) QVERIFY(v > 0.0);
      }
    }
    const BenchMeta meta = benchMeta(model, o, "tiny");
    QVERIFY(!meta.commit.empty());
    QVERIFY(!meta.torchVersion.empty());
    const auto md = benchMarkdown(meta, points);
    const auto csv = benchCsv(meta, points);
    const auto json = nlohmann::json::parse(benchJson(meta, points).dump());
    QCOMPARE(json["points"].size(), size_t(16));
    QCOMPARE(json["commit"].get<std::string>(), meta.commit);

    // CSV: one row per point and metric, same n / mean / std as JSON.
    std::istringstream cs(csv);
    std::string line;
    std::getline(cs, line);
    const auto header = split(line, ',');
    QCOMPARE(header[9], std::string("n"));
    int64_t rows = 0;
    while (std::getline(cs, line)) {
      const auto f = split(line, ',');
      QCOMPARE(f.size(), header.size());
      const int64_t batch = std::stoll(f[4]), seq = std::stoll(f[5]);
      const auto& backend = f[6];
      const auto& weights = f[7];
      const auto& metric = f[8];
      int found = 0;
      for (const auto& jp : json["points"]) {
        if (jp["batch"] != batch || jp["seq_len"] != seq || jp["backend"] != backend || jp["weights"] != weights)
          continue;
        const auto& jm = jp["metrics"][metric];
        QCOMPARE(std::stoll(f[9]), jm["n"].get<int64_t>());
        QCOMPARE(std::stod(f[10]), jm["mean"].get<double>());
        QCOMPARE(std::stod(f[11]), jm["std"].get<double>());
        QCOMPARE(split(f[14], ';').size(), jm["samples"].size());
        ++found;
      }
      QVERIFY2(found == 1, line.c_str());
      ++rows;
    }
    QCOMPARE(rows, int64_t(16 * 5));

    // Markdown: the table rows in point order, "mean ± std" per metric column.
    std::istringstream ms(md);
    std::vector<std::string> names;
    size_t point = 0;
    while (std::getline(ms, line)) {
      if (line.rfind("| batch", 0) == 0) {
        const auto cells = split(line, '|');
        for (size_t i = 6; i + 1 < cells.size(); ++i) names.push_back(trim(cells[i]));
        continue;
      }
      if (line.rfind("| ", 0) != 0 || names.empty()) continue;
      const auto cells = split(line, '|');
      const auto& jp = json["points"][point];
      QCOMPARE(std::stoll(trim(cells[1])), jp["batch"].get<int64_t>());
      QCOMPARE(trim(cells[3]), jp["backend"].get<std::string>());
      QCOMPARE(trim(cells[4]), jp["weights"].get<std::string>());
      QCOMPARE(std::stoll(trim(cells[5])), int64_t(3));
      for (size_t i = 0; i < names.size(); ++i) {
        const auto cell = trim(cells[6 + i]);
        const auto pm = cell.find(" ± ");
        QVERIFY2(pm != std::string::npos, cell.c_str());
        const auto& jm = jp["metrics"][names[i]];
        QVERIFY(std::abs(std::stod(cell.substr(0, pm)) - jm["mean"].get<double>()) <= 0.005 + 1e-9);
        QVERIFY(std::abs(std::stod(cell.substr(pm + std::string(" ± ").size())) - jm["std"].get<double>()) <=
                0.005 + 1e-9);
        QCOMPARE(jm["n"].get<int64_t>(), int64_t(3));
      }
      ++point;
    }
    QCOMPARE(point, size_t(16));
  }

  void timeForwardGivesRepeats() {
    Gpt2Config c;
    c.vocabSize = 64;
    c.nPositions = 32;
    c.nEmbd = 32;
    c.nLayer = 1;
    c.nHead = 2;
    Gpt2 model(c);
    const auto t = timeForward(model, 2, 8, 1, 4);
    QCOMPARE(t.size(), size_t(4));
    QVERIFY(summarize(t).mean > 0.0);
  }
};

QTEST_APPLESS_MAIN(TestBenchmark)
#include "test_benchmark.moc"
