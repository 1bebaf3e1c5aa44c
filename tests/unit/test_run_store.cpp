// The run directory: events appended and flushed, CSV rows, atomic summary, a torn
// last line skipped, and the summary rebuilt from events when the writer died.
#include <QTemporaryDir>
#include <QtTest>
#include <fstream>

#include "core/run/run_store.h"
#include "core/run/stage_registry.h"

using namespace wb;
namespace fs = std::filesystem;

namespace {
Profile tinyProfile() {
  Profile p;
  p.name = "store-test";
  p.model.source = "config";
  return p;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
}  // namespace

class TestRunStore : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void writesEventsCsvAndSummary() {
    QTemporaryDir tmp;
    const auto dir = RunStore::createRunDir(tmp.path().toStdString(), "store-test");
    QVERIFY(dir.filename().string().ends_with("-store-test"));
    {
      RunStore store(dir, tinyProfile());
      store.onRunStart(dir.string());
      store.onStageStart(0, "train", "pretrain");
      for (int i = 0; i < 5; ++i) store.onSample({"pretrain", "train/loss", i, 10.0 - i, 0.1 * i});
      store.onLog({"pretrain", LogLevel::Info, "hello, \"world\"", 0.5});
      store.onStageEnd(0, "pretrain", RunStatus::Finished);
      store.onRunEnd(RunStatus::Finished, "");
    }
    const auto events = RunStore::readEvents(dir);
    QCOMPARE(events.size(), size_t(10));
    QCOMPARE(events.front().kind, std::string("run_start"));
    const std::string csv = slurp(dir / "metrics.csv");
    QVERIFY(csv.starts_with("wall_time,step,series,value,stage\n"));
    QCOMPARE(std::count(csv.begin(), csv.end(), '\n'), 6);
    QVERIFY(fs::exists(dir / "summary.json"));
    QVERIFY(fs::exists(dir / "profile.json"));
    const RunSummary s = RunStore::loadSummary(dir);
    QCOMPARE(s.status, RunStatus::Finished);
    QCOMPARE(s.series.size(), size_t(1));
    QCOMPARE(s.series[0].stats.n, 5);
    QCOMPARE(s.series[0].stats.mean, 8.0);
    QCOMPARE(s.series[0].last, 6.0);
  }
  void tornTailIsSkippedAndSummaryRebuilt() {
    QTemporaryDir tmp;
    const auto dir = RunStore::createRunDir(tmp.path().toStdString(), "died");
    {
      RunStore store(dir, tinyProfile());
      store.onRunStart(dir.string());
      store.onStageStart(0, "train", "pretrain");
      store.onSample({"pretrain", "train/loss", 1, 3.0, 0.1});
      store.onSample({"pretrain", "train/loss", 2, 2.0, 0.2});
      // no run_end: the process "died" here
    }
    {
      std::ofstream out(dir / "events.jsonl", std::ios::app | std::ios::binary);
      out << "{\"event\":\"sample\",\"stage\":\"pretrain\",\"series\":\"train/lo";  // torn
    }
    const auto events = RunStore::readEvents(dir);
    QCOMPARE(events.size(), size_t(4));
    QVERIFY(!fs::exists(dir / "summary.json"));
    const RunSummary s = RunStore::loadSummary(dir);
    // Our own pid is alive, so a run without an end written by this process reads as
    // running; rewrite the pid to a dead one to see "interrupted".
    QCOMPARE(s.status, RunStatus::Running);
    QCOMPARE(s.series.at(0).stats.n, 2);
    QCOMPARE(s.series.at(0).last, 2.0);
  }
  void collidingNamesGetSuffixes() {
    QTemporaryDir tmp;
    const auto a = RunStore::createRunDir(tmp.path().toStdString(), "same");
    const auto b = RunStore::createRunDir(tmp.path().toStdString(), "same");
    QVERIFY(a != b);
    QCOMPARE(RunStore::listRuns(tmp.path().toStdString()).size(), size_t(0));  // no events yet
  }
};

QTEST_APPLESS_MAIN(TestRunStore)
#include "test_run_store.moc"
