// Benchmark statistics against hand-computed values (tolerance: 1e-9 absolute for
// exact arithmetic, 1e-4 for tabulated t quantiles).
#include <QtTest>
#include <random>

#include "core/bench/stats.h"
#include "core/bench/stats_json.h"

using namespace wb;

class TestStats : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void summaryOfKnownSample() {
    const std::vector<double> v = {2, 4, 4, 4, 5, 5, 7, 9};
    const StatsSummary s = summarize(v);
    QCOMPARE(s.n, 8);
    QVERIFY(std::fabs(s.mean - 5.0) < 1e-12);
    // Sample variance: sum of squared deviations 32 over n-1 = 7.
    QVERIFY(std::fabs(s.std - std::sqrt(32.0 / 7.0)) < 1e-12);
    QCOMPARE(s.min, 2.0);
    QCOMPARE(s.max, 9.0);
    QVERIFY(std::fabs(s.p50 - 4.5) < 1e-12);  // between the 4th and 5th sorted values
    QVERIFY(std::fabs(s.p95 - 8.3) < 1e-12);  // 7 + 0.65 * (9 - 7)
    // 95% CI half-width: t(0.975, 7) = 2.3646 times std / sqrt(8).
    QVERIFY(std::fabs(s.ci95 - 2.3646 * std::sqrt(32.0 / 7.0) / std::sqrt(8.0)) < 1e-9);
  }
  void welfordIsStableForLargeOffsets() {
    Welford w;
    for (double x : {1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16}) w.add(x);
    QVERIFY(std::fabs(w.mean() - (1e9 + 10)) < 1e-6);
    QVERIFY(std::fabs(w.variance() - 30.0) < 1e-6);  // (36 + 9 + 9 + 36) / 3
  }
  void singleAndEmpty() {
    QCOMPARE(summarize(std::vector<double>{}).n, 0);
    const auto one = summarize(std::vector<double>{3.5});
    QCOMPARE(one.n, 1);
    QCOMPARE(one.std, 0.0);
    QCOMPARE(one.ci95, 0.0);
  }
  void studentT_data() {
    QTest::addColumn<int>("dof");
    QTest::addColumn<double>("expected");
    QTest::newRow("1") << 1 << 12.7062;
    QTest::newRow("4") << 4 << 2.7764;
    QTest::newRow("30") << 30 << 2.0423;
    QTest::newRow("40") << 40 << 2.0211;
    QTest::newRow("100") << 100 << 1.9840;
    QTest::newRow("1000") << 1000 << 1.9623;
  }
  void studentT() {
    QFETCH(int, dof);
    QFETCH(double, expected);
    QVERIFY2(std::fabs(studentT975(dof) - expected) < 1e-4, qPrintable(QString::number(studentT975(dof))));
  }
  void debiasedEmaMatchesHandComputation() {
    const std::vector<double> v = {1, 2, 3};
    const auto e = debiasedEma(v, 0.5);
    QVERIFY(std::fabs(e[0] - 1.0) < 1e-12);
    QVERIFY(std::fabs(e[1] - 1.25 / 0.75) < 1e-12);
    QVERIFY(std::fabs(e[2] - 2.125 / 0.875) < 1e-12);
    const auto flat = debiasedEma(v, 0.0);  // no smoothing
    QCOMPARE(flat, v);
  }
  void rollingWindow() {
    const std::vector<double> v = {1, 3, 5, 7};
    std::vector<double> m, s;
    rollingMeanStd(v, 2, m, s);
    QCOMPARE(m, (std::vector<double>{1, 2, 4, 6}));
    QCOMPARE(s[0], 0.0);
    QVERIFY(std::fabs(s[3] - std::sqrt(2.0)) < 1e-12);  // {5, 7}: sample std sqrt(2)
  }
  void noiseStdIgnoresTrend() {
    // A straight line has no noise however steep it is; the plain rolling std does not
    // know that (this is what made the bands of a falling loss curve balloon).
    std::vector<double> line(50);
    for (size_t i = 0; i < line.size(); ++i) line[i] = 10.0 - 0.3 * double(i);
    for (double s : rollingNoiseStd(line, 10)) QVERIFY(std::fabs(s) < 1e-12);
    std::vector<double> m, s;
    rollingMeanStd(line, 10, m, s);
    QVERIFY(s.back() > 0.5);
  }
  void noiseStdRecoversGaussianNoise() {
    // Seeded Gaussian noise (std 0.2) on a falling trend; 20,000 points, window 2,000:
    // the estimate's own sampling error is ~2.2% (std of a std over 2,000 points),
    // so 8% is a loose but failing-capable bound.
    std::mt19937_64 rng(42);
    std::normal_distribution<double> noise(0.0, 0.2);
    std::vector<double> v(20000);
    for (size_t i = 0; i < v.size(); ++i) v[i] = 10.0 * std::exp(-double(i) / 5000.0) + noise(rng);
    const std::vector<double> est = rollingNoiseStd(v, 2000);
    for (size_t i = 2000; i < v.size(); i += 1000) QVERIFY2(std::fabs(est[i] - 0.2) < 0.016, qPrintable(QString::number(est[i])));
    QCOMPARE(est[0], 0.0);
  }
  void quantileEdges() {
    const std::vector<double> v = {3, 1, 2};
    QCOMPARE(quantile(v, 0.0), 1.0);
    QCOMPARE(quantile(v, 1.0), 3.0);
    QCOMPARE(quantile(v, 0.5), 2.0);
  }

  // Every report writes statistics through statsJson: the round trip must keep each
  // field, and samplesJson must carry the samples it summarised.
  void jsonRoundTrip() {
    const std::vector<double> v = {3.0, 1.0, 4.0, 1.0, 5.0, 9.0};
    const wb::StatsSummary s = wb::summarize(v);
    const wb::StatsSummary back = wb::statsFromJson(nlohmann::json::parse(wb::statsJson(s).dump()));
    QCOMPARE(back.n, s.n);
    for (auto [a, b] : {std::pair{back.mean, s.mean},
                        {back.std, s.std},
                        {back.min, s.min},
                        {back.max, s.max},
                        {back.p50, s.p50},
                        {back.p95, s.p95},
                        {back.ci95, s.ci95}})
      QVERIFY(std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b)));
    const nlohmann::json j = wb::samplesJson(v);
    QCOMPARE(j.at("n").get<int64_t>(), int64_t{6});
    QCOMPARE(j.at("samples").get<std::vector<double>>(), v);
    QCOMPARE(j.at("mean").get<double>(), 23.0 / 6.0);
    QCOMPARE(wb::statsFromJson(nlohmann::json::object()).n, int64_t{0});
  }
};

QTEST_APPLESS_MAIN(TestStats)
#include "test_stats.moc"
