// `gpt2-bench run` as a real child process: a run killed with SIGKILL mid-training
// leaves a directory that still opens (events.jsonl parses up to its last complete
// line, the summary is rebuilt as interrupted); SIGINT cancels cleanly with exit code
// 130 and a summary marked cancelled.
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <csignal>
#include <fstream>

#include "core/io/token_file.h"
#include "core/run/run_store.h"
#include "tests/support/test_support.h"

using namespace wb;
namespace fs = std::filesystem;

namespace {

// A training run that would take hours: tiny model, random tokens, many steps.
fs::path writeLongProfile(const fs::path& dir) {
  std::vector<int32_t> ids(20000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 2654435761u) % 97);
  writeTokenFile(dir / "train.bin", ids);
  writeTokenFile(dir / "val.bin", std::span<const int32_t>(ids.data(), 2000));
  const std::string profile = R"({"schema": 1, "name": "long-run",
    "device": {"threads": 1},
    "model": {"source": "config", "config": {"vocab_size": 97, "n_layer": 1, "n_head": 2,
              "n_embd": 16, "n_positions": 32}},
    "data": {"train": ")" + (dir / "train.bin").string() + R"(", "val": ")" +
                              (dir / "val.bin").string() + R"(", "seq_len": 16},
    "stages": [{"type": "train", "steps": 100000000, "batch_size": 2, "eval_every": 0,
                "warmup_steps": 1}]})";
  std::ofstream(dir / "long.json") << profile;
  return dir / "long.json";
}

fs::path waitForSamples(const fs::path& runsRoot, int wanted, int timeoutMs) {
  QElapsedTimer timer;
  timer.start();
  while (timer.elapsed() < timeoutMs) {
    for (const auto& run : RunStore::listRuns(runsRoot)) {
      std::ifstream in(run / "events.jsonl");
      int samples = 0;
      for (std::string line; std::getline(in, line);) samples += line.find("\"sample\"") != std::string::npos;
      if (samples >= wanted) return run;
    }
    QThread::msleep(50);
  }
  return {};
}

}  // namespace

class TestCliRun : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void sigkillLeavesReadableRun() {
    QTemporaryDir tmp;
    const fs::path dir = tmp.path().toStdString();
    const auto profile = writeLongProfile(dir);
    QProcess p;
    p.start(QString::fromStdString(test::benchExe()),
            {"run", QString::fromStdString(profile.string()), "--runs-dir",
             QString::fromStdString((dir / "runs").string()), "--quiet"});
    QVERIFY(p.waitForStarted());
    const fs::path run = waitForSamples(dir / "runs", 40, 60000);
    QVERIFY2(!run.empty(), p.readAllStandardError().constData());
    ::kill(static_cast<pid_t>(p.processId()), SIGKILL);
    QVERIFY(p.waitForFinished(10000));
    QCOMPARE(p.exitStatus(), QProcess::CrashExit);

    const auto events = RunStore::readEvents(run);
    QVERIFY(events.size() >= 40);
    QCOMPARE(events.front().kind, std::string("run_start"));
    QVERIFY(!fs::exists(run / "summary.json"));
    const RunSummary s = RunStore::loadSummary(run);
    QCOMPARE(s.status, RunStatus::Interrupted);
    bool hasLoss = false;
    for (const auto& series : s.series) hasLoss = hasLoss || (series.series == "train/loss" && series.stats.n > 0);
    QVERIFY(hasLoss);
    QVERIFY(fs::exists(run / "profile.json"));
  }

  void sigintCancelsCleanly() {
    QTemporaryDir tmp;
    const fs::path dir = tmp.path().toStdString();
    const auto profile = writeLongProfile(dir);
    QProcess p;
    p.start(QString::fromStdString(test::benchExe()),
            {"run", QString::fromStdString(profile.string()), "--runs-dir",
             QString::fromStdString((dir / "runs").string()), "--quiet"});
    QVERIFY(p.waitForStarted());
    const fs::path run = waitForSamples(dir / "runs", 20, 60000);
    QVERIFY(!run.empty());
    ::kill(static_cast<pid_t>(p.processId()), SIGINT);
    QVERIFY(p.waitForFinished(10000));
    QCOMPARE(p.exitStatus(), QProcess::NormalExit);
    QCOMPARE(p.exitCode(), 130);
    const RunSummary s = RunStore::loadSummary(run);
    QVERIFY(fs::exists(run / "summary.json"));
    QCOMPARE(s.status, RunStatus::Cancelled);
    // The summary table was printed with what was measured before the cancel.
    QVERIFY(QString(p.readAllStandardOutput()).contains("train/loss"));
  }

  void badInputExitCodes() {
    QTemporaryDir tmp;
    const fs::path dir = tmp.path().toStdString();
    std::ofstream(dir / "nodata.json") << R"({"schema": 1, "name": "nodata",
      "model": {"source": "config", "config": {"n_layer": 1, "n_head": 2, "n_embd": 16}},
      "stages": [{"type": "eval"}]})";
    const auto r = test::runProcess(test::benchExe(), {"run", (dir / "nodata.json").string(),
                                                       "--runs-dir", (dir / "runs").string()});
    QCOMPARE(r.exitCode, 2);  // a stage failed on bad input (no data): exit code of bad input
    QVERIFY2(QString::fromStdString(r.err).contains("/data: this stage needs token data"), r.err.c_str());
  }
};

QTEST_GUILESS_MAIN(TestCliRun)
#include "test_cli_run.moc"
