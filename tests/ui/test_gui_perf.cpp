// Issue 4: the GUI never blocks. During a run driven through the real main window it
// measures how late a 1 ms PreciseTimer on the GUI thread fires (the event-loop
// latency; an idle baseline is taken the same way, because on a shared machine the
// OS alone delays wake-ups), the longest single event handler (wall and thread CPU
// time) and the plotting rate; then the cost of a 30 Hz tick as one series grows to
// a million points. Bounds: p99 latency and the longest handler's CPU time < 50 ms,
// replots <= 30 Hz, a 30 Hz tick at a million points < 33 ms of CPU. With
// WB_PERF_DOC set, the numbers go into that file's "## GUI" section (docs/PERF.md).
#include <time.h>

#include <QApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QSysInfo>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>
#include <algorithm>
#include <qcustomplot.h>

#include "core/bench/stats.h"
#include "tests/support/ui_test_stages.h"
#include "ui/live_plot.h"
#include "ui/main_window.h"
#include "ui/metric_store.h"
#include "ui/plot_board.h"
#include "ui/profile_editor.h"
#include "ui/run_controller.h"

using namespace wb;
using namespace wb::ui;
using nlohmann::json;

namespace {

double threadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

QString loadAverage() {
  QFile f("/proc/loadavg");
  return f.open(QIODevice::ReadOnly) ? QString::fromLatin1(f.readAll()).section(' ', 0, 2) : QString("?");
}

// Times every event the GUI thread delivers, in wall clock and in this thread's CPU
// time: the CPU time is our handlers' own work, whatever else the machine runs.
class TimingApplication : public QApplication {
 public:
  using QApplication::QApplication;
  bool notify(QObject* receiver, QEvent* event) override {
    if (!recording || depth_ > 0) return QApplication::notify(receiver, event);
    ++depth_;
    QElapsedTimer t;
    t.start();
    const double cpu0 = threadCpuMs();
    const bool r = QApplication::notify(receiver, event);
    const double cpu = threadCpuMs() - cpu0, wall = t.nsecsElapsed() / 1e6;
    --depth_;
    if (cpu > worstCpuMs) {
      worstCpuMs = cpu;
      worstCpuWhat = QString("event type %1 to %2").arg(int(event->type())).arg(receiver->metaObject()->className());
    }
    worstWallMs = std::max(worstWallMs, wall);
    return r;
  }
  bool recording = false;
  double worstWallMs = 0, worstCpuMs = 0;
  QString worstCpuWhat;

 private:
  int depth_ = 0;
};

// Lateness (ms) of a 1 ms PreciseTimer over `ms` of event loop, with `during` started first.
struct Probe {
  std::vector<double> lateMs;
  QElapsedTimer clock;
  qint64 last = 0;
  QTimer timer;
  Probe() {
    timer.setTimerType(Qt::PreciseTimer);
    timer.setInterval(1);
    QObject::connect(&timer, &QTimer::timeout, [this] {
      const qint64 now = clock.nsecsElapsed();
      lateMs.push_back(std::max(0.0, (now - last) / 1e6 - 1.0));
      last = now;
    });
  }
  void start() {
    clock.start();
    last = 0;
    timer.start();
  }
};

// Replaces (or appends) the "## <title>" section of a Markdown file, leaving the
// other sections as they are: other parts of the project own them.
void writeSection(const QString& path, const QString& title, const QString& body) {
  QString doc;
  QFile in(path);
  if (in.open(QIODevice::ReadOnly)) doc = QString::fromUtf8(in.readAll());
  if (doc.isEmpty()) doc = "# Performance\n\nMeasured numbers, each with how it was measured.\n";
  const QString header = "## " + title + "\n";
  const qsizetype start = doc.indexOf(header);
  const QString section = header + body + (body.endsWith('\n') ? "" : "\n");
  if (start < 0) {
    if (!doc.endsWith("\n\n")) doc += doc.endsWith('\n') ? "\n" : "\n\n";
    doc += section;
  } else {
    qsizetype end = doc.indexOf("\n## ", start + header.size());
    end = end < 0 ? doc.size() : end + 1;
    doc.replace(start, end - start, section + (end < doc.size() ? "\n" : ""));
  }
  QFile out(path);
  if (out.open(QIODevice::WriteOnly | QIODevice::Truncate)) out.write(doc.toUtf8());
}

// What one run in the main window measured.
struct RunNumbers {
  double runSeconds = 0;
  StatsSummary late;
  double lateP99 = 0;
  double handlerWallMs = 0, handlerCpuMs = 0;
  QString handlerWhat;
  int64_t samples = 0, steps = 0;
};

struct Numbers {
  QString load;
  RunNumbers gpt2;  // the real GPT-2 train stage on the CPU
  double runSeconds = 0;
  StatsSummary late, idle;
  double lateP99 = 0, idleP99 = 0;
  double handlerWallMs = 0, handlerCpuMs = 0;
  QString handlerWhat;
  int64_t samples = 0, batches = 0, replots = 0, plotted = 0;
  QStringList replotTimes;
  int64_t bigPoints = 0, batch = 0;
  StatsSummary tickWall, tickCpu;
  double replot1MMs = 0;
};
Numbers g;

}  // namespace

class TestGuiPerf : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(tmp_.isValid());
    qputenv("WB_RUNS_DIR", QDir(tmp_.path()).filePath("runs").toUtf8());
  }

  void eventLoopLatencyDuringRun() {
    g.load = loadAverage();
    MainWindow w(test::uiTestStages());
    w.setRunsRoot(QDir(tmp_.path()).filePath("runs"));
    w.resize(1600, 1000);
    w.show();
    // ~700 steps/s with 4-5 samples each: about ten times a CPU training run's rate.
    w.profileEditor()->setText(QString::fromStdString(
        test::synthProfile("perf", {{"steps", 5000}, {"step_ms", 1.0}, {"eval_every", 20}, {"bench_points", 5}, {"repeats", 10}})
            .dump(2)));
    auto* app = static_cast<TimingApplication*>(qApp);
    Probe probe;
    QSignalSpy finished(&w, &MainWindow::runFinished);
    app->recording = true;
    probe.start();
    w.startRun();
    QVERIFY(finished.wait(120000));
    probe.timer.stop();
    app->recording = false;
    QCOMPARE(finished.front().at(0).value<RunStatus>(), RunStatus::Finished);
    g.runSeconds = probe.clock.nsecsElapsed() / 1e9;
    g.late = summarize(probe.lateMs);
    g.lateP99 = quantile(probe.lateMs, 0.99);
    g.handlerWallMs = app->worstWallMs;
    g.handlerCpuMs = app->worstCpuMs;
    g.handlerWhat = app->worstCpuWhat;
    g.samples = w.controller()->samplesDelivered();
    g.batches = w.controller()->batchesDelivered();
    g.replots = w.liveBoard()->replots();
    // The last batch reaches the plots at the next GUI tick after the run's end.
    QTRY_COMPARE_WITH_TIMEOUT(w.liveBoard()->pointsPlotted(), g.samples, 5000);
    g.plotted = w.liveBoard()->pointsPlotted();
    for (LivePlot* p : w.liveBoard()->plots())
      g.replotTimes << QString("%1 %2 ms").arg(familyKey(p->family())).arg(p->plot()->replotTime(true), 0, 'f', 1);

    // The same probe with the window idle: what the machine alone costs.
    Probe idle;
    idle.start();
    QEventLoop loop;
    QTimer::singleShot(3000, &loop, &QEventLoop::quit);
    loop.exec();
    g.idle = summarize(idle.lateMs);
    g.idleP99 = quantile(idle.lateMs, 0.99);

    qInfo("load %s; run %.2f s: %lld samples in %lld batches", qPrintable(g.load), g.runSeconds, (long long)g.samples,
          (long long)g.batches);
    qInfo("timer lateness during run: mean %.3f p99 %.2f worst %.2f ms (%lld ticks); idle: mean %.3f p99 %.2f worst %.2f ms",
          g.late.mean, g.lateP99, g.late.max, (long long)g.late.n, g.idle.mean, g.idleP99, g.idle.max);
    qInfo("longest handler: wall %.2f ms, cpu %.2f ms (%s)", g.handlerWallMs, g.handlerCpuMs, qPrintable(g.handlerWhat));
    qInfo("%lld replot ticks (%.1f Hz), %lld points plotted (%.0f/s); replot avg: %s", (long long)g.replots,
          g.replots / g.runSeconds, (long long)g.plotted, g.plotted / g.runSeconds, qPrintable(g.replotTimes.join(", ")));

    QVERIFY(g.late.n > 100);
    // Latency and handler cost are measurements (printed above, recorded in docs/PERF.md),
    // not assertions: a loaded CI machine must not turn timing into a red test.
    // The GUI timer bounds replots at 30 Hz; 10% slack for timer coalescing and the
    // partial periods at each end.
    QVERIFY(g.replots <= 33 * g.runSeconds + 3);
    QCOMPARE(g.plotted, g.samples);  // every sample reached the plots
  }

  // The same probe around the real GPT-2 train stage on the CPU: the worker thread then
  // competes with LibTorch's compute threads for the cores, which the synthetic run
  // (mostly sleeping) does not show.
  void eventLoopLatencyDuringGpt2Training() {
    MainWindow w;  // the built-in stages
    w.setRunsRoot(QDir(tmp_.path()).filePath("runs"));
    w.resize(1600, 1000);
    w.show();
    const json profile = {
        {"schema", 1},
        {"name", "perf-gpt2"},
        {"seed", 7},
        {"device", {{"type", "cpu"}, {"dtype", "fp32"}}},
        {"model",
         {{"source", "config"}, {"config", {{"n_layer", 2}, {"n_head", 2}, {"n_embd", 64}, {"n_positions", 64}}}}},
        {"data", {{"text", {"asset:moby-dick"}}, {"val_fraction", 0.1}, {"seq_len", 64}}},
        {"stages",
         json::array({{{"type", "train"}, {"name", "pretrain"}, {"steps", 40}, {"batch_size", 4}, {"lr", 2e-3},
                       {"eval_every", 10}, {"eval_windows", 8}, {"checkpoint_every", 0}}})}};
    w.profileEditor()->setText(QString::fromStdString(profile.dump(2)));
    auto* app = static_cast<TimingApplication*>(qApp);
    app->worstWallMs = app->worstCpuMs = 0;
    Probe probe;
    QSignalSpy finished(&w, &MainWindow::runFinished);
    app->recording = true;
    probe.start();
    w.startRun();
    QVERIFY(finished.wait(600000));
    probe.timer.stop();
    app->recording = false;
    QCOMPARE(finished.front().at(0).value<RunStatus>(), RunStatus::Finished);
    RunNumbers& r = g.gpt2;
    r.runSeconds = probe.clock.nsecsElapsed() / 1e9;
    r.late = summarize(probe.lateMs);
    r.lateP99 = quantile(probe.lateMs, 0.99);
    r.handlerWallMs = app->worstWallMs;
    r.handlerCpuMs = app->worstCpuMs;
    r.handlerWhat = app->worstCpuWhat;
    r.samples = w.controller()->samplesDelivered();
    r.steps = 40;
    qInfo("GPT-2 train run %.2f s, %lld samples: lateness mean %.3f p99 %.2f worst %.2f ms; longest handler wall %.2f "
          "cpu %.2f ms (%s)",
          r.runSeconds, (long long)r.samples, r.late.mean, r.lateP99, r.late.max, r.handlerWallMs, r.handlerCpuMs,
          qPrintable(r.handlerWhat));
    QVERIFY(r.late.n > 100);
    QVERIFY(r.samples > 40);  // at least one sample a step reached the GUI thread
  }

  void millionPointsAt30Hz() {
    MetricStore store;
    PlotBoard board;
    board.addStore(&store);
    board.resize(1920, 1200);
    board.show();
    g.batch = 10000;  // points per 30 Hz tick: 300,000 points/s
    g.bigPoints = 1000000;
    std::vector<double> wallMs, cpuMs;
    std::vector<MetricSample> batch(static_cast<size_t>(g.batch));
    uint64_t x = 88172645463325252ull;  // xorshift: cheap deterministic noise
    for (int64_t start = 0; start < g.bigPoints; start += g.batch) {
      for (int64_t i = 0; i < g.batch; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const int64_t step = start + i;
        batch[size_t(i)] = {"pretrain", "train/loss", step, 3.0 / (1 + step * 1e-5) + (x % 1000) * 1e-4, step * 1e-3};
      }
      store.append(batch);
      QElapsedTimer t;
      t.start();
      const double cpu0 = threadCpuMs();
      board.refreshNow();  // what one timer tick does, with the replot done at once
      cpuMs.push_back(threadCpuMs() - cpu0);
      wallMs.push_back(t.nsecsElapsed() / 1e6);
    }
    LivePlot* p = board.plotFor(MetricFamily::Loss);
    QVERIFY(p);
    QCOMPARE(p->curves().front().raw->dataCount(), int(g.bigPoints));
    QElapsedTimer t;
    t.start();
    p->plot()->replot(QCustomPlot::rpImmediateRefresh);
    g.replot1MMs = t.nsecsElapsed() / 1e6;
    g.tickWall = summarize(wallMs);
    g.tickCpu = summarize(cpuMs);
    qInfo("1M points, ticks of 10k: wall mean %.2f max %.2f ms; cpu mean %.2f max %.2f ms; full replot %.2f ms",
          g.tickWall.mean, g.tickWall.max, g.tickCpu.mean, g.tickCpu.max, g.replot1MMs);
    QVERIFY2(g.tickCpu.mean < 1000.0 / PlotBoard::kMaxReplotHz, qPrintable(QString::number(g.tickCpu.mean)));
  }

  void cleanupTestCase() {
    const QByteArray doc = qgetenv("WB_PERF_DOC");
    if (doc.isEmpty() || g.late.n == 0 || g.gpt2.late.n == 0 || g.tickWall.n == 0) return;
    QString b;
    b += QStringLiteral(
             "Measured by `tests/ui/test_gui_perf.cpp` (ctest `test_ui_gui_perf`; run it with "
             "`WB_PERF_DOC=$PWD/docs/PERF.md` to rewrite this section) on %1, %2 hardware threads, Qt %3, offscreen "
             "platform, RelWithDebInfo (-O2). Load average when it started: %4 (the machine is shared with builds; "
             "the idle column shows what that alone costs).\n\n")
             .arg(QSysInfo::prettyProductName())
             .arg(QThread::idealThreadCount())
             .arg(qVersion())
             .arg(g.load);
    b += QStringLiteral(
             "### Event-loop latency during a run\n\n"
             "The main window (1600×1000, six live plots) runs a profile on its worker thread while a 1 ms "
             "`Qt::PreciseTimer` on the GUI thread records how late each tick fires. The run is the UI tests' "
             "synthetic stage (`tests/support/ui_test_stages.cpp`, 5,000 steps of 1 ms, 4–5 samples a step plus "
             "eval and benchmark points): %1 samples in %2 s, delivered in %3 batches — several times the event "
             "rate of a CPU training run. Below it, the same probe around the real GPT-2 `train` stage on the CPU "
             "(2 layers × 64 wide, batch 4 × 64 tokens of Moby Dick, 40 steps, eval every 10), where LibTorch's "
             "compute threads compete with the GUI thread for the cores.\n\n"
             "| timer lateness | ticks | mean | p99 | worst |\n|---|--:|--:|--:|--:|\n"
             "| during the run | %4 | %5 ms | %6 ms | %7 ms |\n"
             "| idle window, same machine | %8 | %9 ms | %10 ms | %11 ms |\n")
             .arg(g.samples)
             .arg(g.runSeconds, 0, 'f', 2)
             .arg(g.batches)
             .arg(g.late.n)
             .arg(g.late.mean, 0, 'f', 3)
             .arg(g.lateP99, 0, 'f', 2)
             .arg(g.late.max, 0, 'f', 2)
             .arg(g.idle.n)
             .arg(g.idle.mean, 0, 'f', 3)
             .arg(g.idleP99, 0, 'f', 2)
             .arg(g.idle.max, 0, 'f', 2);
    b += QStringLiteral("| during GPT-2 training (%1 s, %2 samples) | %3 | %4 ms | %5 ms | %6 ms |\n\n")
             .arg(g.gpt2.runSeconds, 0, 'f', 1)
             .arg(g.gpt2.samples)
             .arg(g.gpt2.late.n)
             .arg(g.gpt2.late.mean, 0, 'f', 3)
             .arg(g.gpt2.lateP99, 0, 'f', 2)
             .arg(g.gpt2.late.max, 0, 'f', 2);
    b += QStringLiteral(
             "Longest event handled on the GUI thread during GPT-2 training: %1 ms wall, %2 ms of GUI-thread CPU "
             "(%3).\n\n")
             .arg(g.gpt2.handlerWallMs, 0, 'f', 2)
             .arg(g.gpt2.handlerCpuMs, 0, 'f', 2)
             .arg(g.gpt2.handlerWhat);
    b += QStringLiteral(
             "Longest single event handled on the GUI thread during the run: %1 ms wall, %2 ms of GUI-thread CPU "
             "(the most CPU: %3). Target: < 50 ms.\n\n")
             .arg(g.handlerWallMs, 0, 'f', 2)
             .arg(g.handlerCpuMs, 0, 'f', 2)
             .arg(g.handlerWhat);
    b += QStringLiteral(
             "### Plotting rate\n\n"
             "During that run the plots took **%1 points/s** — every delivered sample (%2 points) — in %3 replot "
             "ticks (%4 Hz; the GUI timer caps replots at 30 Hz, spreads them over ticks within a %5 ms budget, and "
             "stops when nothing is new). Average replot per plot: %6.\n\n")
             .arg(g.plotted / g.runSeconds, 0, 'f', 0)
             .arg(g.plotted)
             .arg(g.replots)
             .arg(g.replots / g.runSeconds, 0, 'f', 1)
             .arg(PlotBoard::kReplotBudgetMs, 0, 'f', 0)
             .arg(g.replotTimes.join(", "));
    b += QStringLiteral(
             "### A million points at 30 Hz\n\n"
             "One loss series grows to %1 points in batches of %2 — one batch per 30 Hz tick, **%3 points/s**. Each "
             "tick appends the new raw points, the debiased-EMA tail and the rolling ±1σ band tail (core's "
             "`debiasedEma`, `rollingMeanStd`) to QCustomPlot with adaptive sampling and replots a 1920×1200 plot "
             "at once.\n\n"
             "| per tick | mean | max |\n|---|--:|--:|\n"
             "| wall | %4 ms | %5 ms |\n| GUI-thread CPU | %6 ms | %7 ms |\n\n"
             "A full replot with all %1 points: %8 ms.\n")
             .arg(g.bigPoints)
             .arg(g.batch)
             .arg(g.batch * PlotBoard::kMaxReplotHz)
             .arg(g.tickWall.mean, 0, 'f', 2)
             .arg(g.tickWall.max, 0, 'f', 2)
             .arg(g.tickCpu.mean, 0, 'f', 2)
             .arg(g.tickCpu.max, 0, 'f', 2)
             .arg(g.replot1MMs, 0, 'f', 2);
    writeSection(QString::fromLocal8Bit(doc), QStringLiteral("GUI"), b);
  }
};

int main(int argc, char** argv) {
  TimingApplication app(argc, argv);
  TestGuiPerf test;
  QTEST_SET_MAIN_SOURCE_PATH
  return QTest::qExec(&test, argc, argv);
}

#include "test_gui_perf.moc"
