// Issue 4: runs on a worker thread through the real main window, offscreen. A small
// profile (the synthetic stage) fills every family's plot with points and a ±1σ
// band computed by core's stats; Cancel stops within one step; destroying the
// controller cancels and waits; failures and unwritable run roots are reported;
// run history lists the runs and the compare view tables their differences.
#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QTreeWidget>
#include <QtTest>
#include <cmath>
#include <map>
#include <qcustomplot.h>

#include "core/bench/stats.h"
#include "core/run/run_store.h"
#include "tests/support/ui_test_stages.h"
#include "ui/compare_view.h"
#include "ui/live_plot.h"
#include "ui/log_panel.h"
#include "ui/main_window.h"
#include "ui/metric_store.h"
#include "ui/notification.h"
#include "ui/plot_board.h"
#include "ui/profile_editor.h"
#include "ui/run_controller.h"
#include "ui/run_history.h"

using namespace wb;
using namespace wb::ui;
using nlohmann::json;

namespace {

Profile synth(const std::string& name, const json& stage, uint64_t seed = 1337) {
  return parseProfile(test::synthProfile(name, stage, seed), "test", test::uiTestStages());
}

// Runs the editor's profile in the window and waits for the end.
RunStatus runInWindow(MainWindow& w, const json& profile, int timeoutMs = 60000) {
  w.profileEditor()->setText(QString::fromStdString(profile.dump(2)));
  QSignalSpy finished(&w, &MainWindow::runFinished);
  w.startRun();
  if (!finished.wait(timeoutMs)) return RunStatus::Running;
  return finished.front().at(0).value<RunStatus>();
}

}  // namespace

class TestRunController : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(tmp_.isValid());
    // Nothing of the test may land in the user's runs folder.
    qputenv("WB_RUNS_DIR", QDir(tmp_.path()).filePath("default-runs").toUtf8());
  }

  void runFillsPlotsWithPointsAndBand() {
    const QString root = QDir(tmp_.path()).filePath("fill");
    MainWindow w(test::uiTestStages());
    w.setRunsRoot(root);
    w.resize(1400, 900);
    w.show();
    QStringList statuses;
    w.profileEditor()->setText(QString::fromStdString(
        test::synthProfile("fill", {{"steps", 60}, {"step_ms", 3}, {"eval_every", 10}, {"bench_points", 3}, {"repeats", 5}})
            .dump(2)));
    QSignalSpy finished(&w, &MainWindow::runFinished);
    w.startRun();
    QVERIFY(w.controller() && w.controller()->isRunning());
    connect(w.controller(), &RunController::progressChanged, this, [&] { statuses << w.statusText(); });
    QVERIFY(finished.wait(60000));
    QCOMPARE(finished.front().at(0).value<RunStatus>(), RunStatus::Finished);
    PlotBoard* board = w.liveBoard();
    board->refreshNow();

    // Every family of the synthetic stage has its own plot.
    QCOMPARE(board->plots().size(), size_t(6));
    const MetricStore& store = *w.liveStore();
    const int lossIndex = store.find("synth", "train/loss");
    QVERIFY(lossIndex >= 0);
    const SeriesData& loss = store.series()[lossIndex];
    QCOMPARE(loss.values.size(), size_t(60));

    LivePlot* lossPlot = board->plotFor(MetricFamily::Loss);
    QVERIFY(lossPlot);
    QCOMPARE(lossPlot->curves().size(), size_t(1));
    const LivePlot::Curve& c = lossPlot->curves().front();
    for (QCPGraph* g : {c.raw, c.smooth, c.bandLow, c.bandHigh}) QCOMPARE(g->dataCount(), 60);
    QVERIFY(c.raw->adaptiveSampling());
    QCOMPARE(c.bandHigh->channelFillGraph(), c.bandLow);
    QVERIFY(c.bandHigh->brush().style() != Qt::NoBrush);
    QVERIFY(c.bandHigh->brush().color().alpha() < 255);  // translucent
    QVERIFY(c.raw->pen().color().alpha() < 255);         // raw series faint
    // Only the smoothed line is in the legend.
    QCPLegend* legend = lossPlot->plot()->legend;
    QCOMPARE(legend->itemCount(), 1);
    QVERIFY(legend->hasItemWithPlottable(c.smooth));
    for (QCPGraph* g : {c.raw, c.bandLow, c.bandHigh}) QVERIFY(!legend->hasItemWithPlottable(g));

    // The drawn numbers are core's: the EMA, and the band EMA ± rollingNoiseStd (the
    // band is computed on the tail in chunks, so sums differ only by rounding).
    const PlotOptions o = board->options();
    const std::vector<double> ema = debiasedEma(loss.values, o.smoothing);
    const std::vector<double> sd = rollingNoiseStd(loss.values, o.bandWindow);
    const std::vector<double>& mean = ema;
    double widest = 0.0;
    for (int i = 0; i < 60; ++i) {
      QCOMPARE(c.raw->data()->at(i)->value, loss.values[i]);
      QCOMPARE(c.raw->data()->at(i)->key, double(loss.steps[i]));
      QVERIFY(std::fabs(c.smooth->data()->at(i)->value - ema[i]) <= 1e-12 * std::fabs(ema[i]));
      const double lo = c.bandLow->data()->at(i)->value, hi = c.bandHigh->data()->at(i)->value;
      QVERIFY(std::fabs(lo - (mean[i] - sd[i])) <= 1e-9 * (1 + std::fabs(mean[i])));
      QVERIFY(std::fabs(hi - (mean[i] + sd[i])) <= 1e-9 * (1 + std::fabs(mean[i])));
      widest = std::max(widest, hi - lo);
    }
    QVERIFY(widest > 0.0);

    // Benchmark latency: one point per step, the band is the spread over the repeats.
    LivePlot* latency = board->plotFor(MetricFamily::Latency);
    QVERIFY(latency);
    const LivePlot::Curve& lc = latency->curves().front();
    QCOMPARE(lc.raw->dataCount(), 15);
    QCOMPARE(lc.smooth->dataCount(), 3);
    const SeriesData& lat = store.series()[store.find("synth", "infer/latency_s")];
    const std::vector<double> first(lat.values.begin(), lat.values.begin() + 5);
    const StatsSummary s0 = summarize(first);
    QCOMPARE(lc.smooth->data()->at(0)->value, s0.mean);
    QVERIFY(std::fabs(lc.bandHigh->data()->at(0)->value - (s0.mean + s0.std)) <= 1e-15);
    QCOMPARE(board->plotFor(MetricFamily::Perplexity)->curves().front().raw->dataCount(), 6);

    // The store holds exactly the samples core recorded, in order.
    const auto events = RunStore::readEvents(w.controller()->runDir().toStdString());
    const auto recorded = samplesFromEvents(events);
    QCOMPARE(store.totalPoints(), int64_t(recorded.size()));
    for (size_t i = 0; i < recorded.size(); ++i) {
      const MetricSample s = store.sampleAt(int64_t(i));
      QCOMPARE(s.series, recorded[i].series);
      QCOMPARE(s.step, recorded[i].step);
      QCOMPARE(s.value, recorded[i].value);
    }

    // Status bar: step, ETA and throughput from Progress events while it ran.
    QVERIFY(!statuses.isEmpty());
    QVERIFY2(statuses.front().contains("step ") && statuses.front().contains("/60"), qPrintable(statuses.front()));
    bool sawEta = false, sawRate = false;
    for (const QString& s : statuses) {
      sawEta = sawEta || s.contains("ETA");
      sawRate = sawRate || s.contains("samples/s");
    }
    QVERIFY(sawEta && sawRate);

    // Hover read-out names the series and its smoothed and raw values.
    const QString readout = lossPlot->readoutAt(30.2);
    QVERIFY2(readout.contains("synth: train/loss") && readout.contains("step = 30") && readout.contains("raw"),
             qPrintable(readout));
    // Display options rebuild the graphs without touching the data.
    PlotOptions wall = o;
    wall.xAxis = XAxisMode::WallTime;
    wall.logScale = true;
    wall.smoothing = 0.0;
    board->setOptions(wall);
    QCOMPARE(c.smooth->dataCount(), 60);
    QCOMPARE(c.smooth->data()->at(10)->value, loss.values[10]);  // smoothing 0: the raw values
    QCOMPARE(c.raw->data()->at(10)->key, loss.times[10]);
    QCOMPARE(lossPlot->plot()->yAxis->scaleType(), QCPAxis::stLogarithmic);
    // A finished run's notice is shown without blocking.
    QVERIFY(w.notification()->isVisible());
    QVERIFY(w.notification()->text().contains("Run finished"));
  }

  void boardReplotsEveryPlot() {
    // Regression: the round robin over plots advanced its own start while looping and
    // skipped every other family, so some plots froze mid-run (seen in a screenshot).
    MetricStore store;
    PlotBoard board;
    board.addStore(&store);
    board.resize(1200, 900);
    board.show();
    const std::vector<std::string> series = {"train/loss", "train/step_time_s", "train/samples_per_s", "mem/rss_mb",
                                             "eval/perplexity"};
    auto batch = [&](int64_t step) {
      std::vector<MetricSample> b;
      for (const auto& s : series) b.push_back({"s", s, step, 1.0 + step % 7, 0.01 * step});
      store.append(b);
    };
    batch(0);
    QTRY_COMPARE(board.plots().size(), size_t(5));
    std::map<MetricFamily, int> replots;
    for (LivePlot* p : board.plots())
      connect(p->plot(), &QCustomPlot::afterReplot, this, [&replots, p] { ++replots[p->family()]; });
    auto feed = [&](int64_t from, int64_t to) {
      for (int64_t step = from; step <= to; ++step) {
        batch(step);
        QTest::qWait(1000 / PlotBoard::kMaxReplotHz + 30);  // at least one timer tick
      }
    };
    feed(1, 4);
    const auto before = replots;
    feed(5, 10);  // every plot keeps being redrawn, not only the first ones
    for (LivePlot* p : board.plots())
      QVERIFY2(replots[p->family()] - before.at(p->family()) >= 3,
               qPrintable(QString("%1: %2 -> %3").arg(familyKey(p->family())).arg(before.at(p->family())).arg(replots[p->family()])));
  }

  void cancelStopsWithinOneStep() {
    const double stepMs = 200;
    RunController c(synth("cancel", {{"steps", 1000}, {"step_ms", stepMs}}),
                    QDir(tmp_.path()).filePath("cancel").toStdString(), test::uiTestStages());
    int64_t lastStep = -1, stepAtCancel = -1;
    QElapsedTimer sinceCancel;
    qint64 cancelToEndMs = -1;
    RunStatus status = RunStatus::Running;
    connect(&c, &RunController::samplesArrived, this, [&](const std::vector<MetricSample>& batch) {
      for (const auto& s : batch)
        if (s.series == "train/loss") lastStep = std::max(lastStep, s.step);
      if (lastStep >= 2 && stepAtCancel < 0) {
        // The sample of step k arrives as step k+1 starts sleeping; cancel now.
        stepAtCancel = lastStep;
        sinceCancel.start();
        c.cancel();
      }
    });
    QSignalSpy finished(&c, &RunController::runFinished);
    connect(&c, &RunController::runFinished, this, [&](RunStatus s) {
      status = s;
      cancelToEndMs = sinceCancel.elapsed();
    });
    c.start();
    QVERIFY(finished.wait(30000));
    QCOMPARE(status, RunStatus::Cancelled);
    // The step that was running finishes; the next one never starts.
    QVERIFY2(lastStep <= stepAtCancel + 1, qPrintable(QString("cancel at %1, last %2").arg(stepAtCancel).arg(lastStep)));
    // Within one step of wall time (+150 ms for scheduling on a loaded machine).
    QVERIFY2(cancelToEndMs <= stepMs + 150, qPrintable(QString::number(cancelToEndMs)));
    QCOMPARE(RunStore::loadSummary(c.runDir().toStdString()).status, RunStatus::Cancelled);
  }

  void destructorCancelsAndWaits() {
    auto* c = new RunController(synth("destroy", {{"steps", 100000}, {"step_ms", 20}}),
                                QDir(tmp_.path()).filePath("destroy").toStdString(), test::uiTestStages());
    QSignalSpy started(c, &RunController::runStarted);
    c->start();
    QVERIFY(started.wait(10000));
    const QString dir = c->runDir();
    QElapsedTimer t;
    t.start();
    delete c;  // must cancel and join, not abandon the thread
    QVERIFY2(t.elapsed() < 20 + 500, qPrintable(QString::number(t.elapsed())));
    QCOMPARE(RunStore::loadSummary(dir.toStdString()).status, RunStatus::Cancelled);
  }

  void failureIsReported() {
    MainWindow w(test::uiTestStages());
    w.setRunsRoot(QDir(tmp_.path()).filePath("fail"));
    w.show();
    QCOMPARE(runInWindow(w, test::synthProfile("fail", {{"fail_at", 5}, {"step_ms", 0}})), RunStatus::Failed);
    QVERIFY(w.notification()->isVisible());
    QVERIFY(w.notification()->text().contains("Run failed"));
    QVERIFY(w.notification()->text().contains("failing on purpose at step 5"));
    QVERIFY(w.logPanel()->toPlainText().contains("failing on purpose at step 5"));
    QCOMPARE(w.liveStore()->series()[w.liveStore()->find("synth", "train/loss")].values.size(), size_t(5));
  }

  void unwritableRunsRootFails() {
    // createRunDir throws before the run starts: the controller still ends the run.
    RunController c(synth("nowhere", {}), "/proc/no-such-place/runs", test::uiTestStages());
    QSignalSpy finished(&c, &RunController::runFinished);
    c.start();
    QVERIFY(finished.wait(10000));
    QCOMPARE(finished.front().at(0).value<RunStatus>(), RunStatus::Failed);
    QVERIFY2(finished.front().at(1).toString().contains("cannot create"), qPrintable(finished.front().at(1).toString()));
  }

  void invalidProfileDoesNotStart() {
    MainWindow w(test::uiTestStages());
    w.setRunsRoot(QDir(tmp_.path()).filePath("invalid"));
    w.profileEditor()->setText(QString::fromStdString(test::synthProfile("bad", {{"steps", 0}}).dump(2)));
    w.startRun();
    QVERIFY(!w.controller());
    QVERIFY(w.notification()->text().contains("/stages/0/steps"));
  }

  void historyListsRunsAndCompares() {
    const QString root = QDir(tmp_.path()).filePath("history");
    MainWindow w(test::uiTestStages());
    w.setRunsRoot(root);
    w.show();
    const json stage = {{"steps", 40}, {"step_ms", 0}, {"bench_points", 2}, {"repeats", 6}};
    QCOMPARE(runInWindow(w, test::synthProfile("base", stage)), RunStatus::Finished);
    json scaled = stage;
    scaled["scale"] = 2.0;
    QCOMPARE(runInWindow(w, test::synthProfile("scaled", scaled, 99)), RunStatus::Finished);

    RunHistory* h = w.runHistory();
    h->refresh();  // in the background; earlier scans may still be delivering
    auto bothFinished = [h] {
      return h->list()->topLevelItemCount() == 2 &&
             h->list()->topLevelItem(0)->text(RunHistory::kStatus) == "finished" &&
             h->list()->topLevelItem(1)->text(RunHistory::kStatus) == "finished";
    };
    QTRY_VERIFY_WITH_TIMEOUT(bothFinished(), 10000);
    const auto runs = RunStore::listRuns(root.toStdString());
    QCOMPARE(runs.size(), size_t(2));

    // Open: the history board plots that run's events.
    w.openRun(QString::fromStdString(runs[1].string()));
    w.historyBoard()->refreshNow();
    QVERIFY(w.historyBoard()->plotFor(MetricFamily::Loss));
    QCOMPARE(w.historyBoard()->plotFor(MetricFamily::Loss)->curves().front().raw->dataCount(), 40);

    // Compare, base (older) as baseline A.
    const QStringList dirs = {QString::fromStdString(runs[1].string()), QString::fromStdString(runs[0].string())};
    w.compareRuns(dirs);
    CompareView* cv = w.compareView();
    QCOMPARE(cv->board()->plotFor(MetricFamily::Loss)->curves().size(), size_t(2));
    const RunSummary a = RunStore::loadSummary(runs[1]), b = RunStore::loadSummary(runs[0]);
    auto find = [](const RunSummary& r, const std::string& series) {
      for (const auto& s : r.series)
        if (s.series == series) return s;
      return SeriesSummary{};
    };
    bool checked = false;
    for (const ComparisonRow& r : cv->rows()) {
      if (r.series != "infer/latency_s" || r.baseline) continue;
      const auto sa = find(a, "infer/latency_s"), sb = find(b, "infer/latency_s");
      QCOMPARE(r.stats.n, int64_t(12));
      QCOMPARE(r.difference, sb.stats.mean - sa.stats.mean);
      QCOMPARE(r.ratio, sb.stats.mean / sa.stats.mean);
      QCOMPARE(r.differenceCi, std::sqrt(sa.stats.ci95 * sa.stats.ci95 + sb.stats.ci95 * sb.stats.ci95));
      // scale 2 doubles the latency: the ratio is 2 within the noise (10% per sample,
      // 12 samples: a 3-sigma bound of 0.1·√(2/12)·3 ≈ 0.13 on the ratio).
      QVERIFY2(std::fabs(r.ratio - 2.0) < 0.25, qPrintable(QString::number(r.ratio)));
      checked = true;
    }
    QVERIFY(checked);
    QCOMPARE(cv->table()->rowCount(), int(cv->rows().size()));
    QVERIFY(cv->table()->item(1, CompareView::kRatio) != nullptr);
  }
};

QTEST_MAIN(TestRunController)
#include "test_run_controller.moc"
