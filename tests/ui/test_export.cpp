// Issue 4: exports from a real run. The samples CSV agrees with events.jsonl value
// for value (17 significant digits, so exact); the summary CSV with core's summary;
// the PNGs decode at the asked size (default 1920×1200) and are not blank; the
// Markdown report has the llama-bench-style table and links PNGs that exist.
// Writes go through QSaveFile: a failed write throws and leaves no file.
#include <QFile>
#include <QImage>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>
#include <set>

#include "core/errors.h"
#include "core/run/run_store.h"
#include "tests/support/ui_test_stages.h"
#include "ui/export.h"
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

QStringList readLines(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return {};
  QStringList lines = QString::fromUtf8(f.readAll()).split('\n');
  if (!lines.isEmpty() && lines.back().isEmpty()) lines.removeLast();
  return lines;
}

// RFC 4180 fields of one line (quotes doubled inside quoted fields).
QStringList csvFields(const QString& line) {
  QStringList out;
  QString cur;
  bool quoted = false;
  for (int i = 0; i < line.size(); ++i) {
    const QChar c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out << cur;
      cur.clear();
    } else {
      cur += c;
    }
  }
  out << cur;
  return out;
}

int distinctColors(const QImage& img) {
  std::set<QRgb> colors;
  for (int y = 0; y < img.height(); y += 7)
    for (int x = 0; x < img.width(); x += 7) colors.insert(img.pixel(x, y));
  return static_cast<int>(colors.size());
}

}  // namespace

class TestExport : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  std::unique_ptr<MainWindow> window_;
  QString runDir_;

 private Q_SLOTS:
  void initTestCase() {
    QVERIFY(tmp_.isValid());
    qputenv("WB_RUNS_DIR", QDir(tmp_.path()).filePath("runs").toUtf8());
    window_ = std::make_unique<MainWindow>(test::uiTestStages());
    window_->setRunsRoot(QDir(tmp_.path()).filePath("runs"));
    window_->resize(1200, 800);
    window_->show();
    window_->profileEditor()->setText(QString::fromStdString(
        test::synthProfile("export", {{"name", "warm, \"up\""}, {"steps", 80}, {"step_ms", 0}, {"bench_points", 3}}).dump(2)));
    QSignalSpy finished(window_.get(), &MainWindow::runFinished);
    window_->startRun();
    QVERIFY(finished.wait(60000));
    QCOMPARE(finished.front().at(0).value<RunStatus>(), RunStatus::Finished);
    runDir_ = window_->controller()->runDir();
  }
  void cleanupTestCase() { window_.reset(); }

  void samplesCsvAgreesWithEvents() {
    const QString path = QDir(tmp_.path()).filePath("samples.csv");
    writeSamplesCsv(*window_->liveStore(), path);
    const QStringList lines = readLines(path);
    QCOMPARE(lines.value(0), QString("stage,series,step,t_s,value"));
    const auto samples = samplesFromEvents(RunStore::readEvents(runDir_.toStdString()));
    QCOMPARE(samples.size(), size_t(80 * 4 + 8 + 3 * 5));  // see synthProfile's stage
    QCOMPARE(lines.size() - 1, int(samples.size()));
    for (size_t i = 0; i < samples.size(); ++i) {
      const QStringList f = csvFields(lines[int(i) + 1]);
      QCOMPARE(f.size(), 5);
      QCOMPARE(f[0].toStdString(), samples[i].stage);
      QCOMPARE(f[1].toStdString(), samples[i].series);
      QCOMPARE(f[2].toLongLong(), samples[i].step);
      // Exact: 17 significant digits read back to the same double.
      QCOMPARE(f[3].toDouble(), samples[i].tSeconds);
      QCOMPARE(f[4].toDouble(), samples[i].value);
    }
  }

  void summaryCsvAgreesWithCore() {
    const QString path = QDir(tmp_.path()).filePath("summary.csv");
    const RunSummary summary = RunStore::loadSummary(runDir_.toStdString());
    writeSummaryCsv(summary, path);
    const QStringList lines = readLines(path);
    QCOMPARE(lines.value(0), QString("stage,series,n,mean,std,min,max,p50,p95,ci95,last,last_step"));
    QCOMPARE(lines.size() - 1, int(summary.series.size()));
    for (size_t i = 0; i < summary.series.size(); ++i) {
      const QStringList f = csvFields(lines[int(i) + 1]);
      const SeriesSummary& s = summary.series[i];
      QCOMPARE(f.size(), 12);
      QCOMPARE(f[1].toStdString(), s.series);
      QCOMPARE(f[2].toLongLong(), s.stats.n);
      QCOMPARE(f[3].toDouble(), s.stats.mean);
      QCOMPARE(f[4].toDouble(), s.stats.std);
      QCOMPARE(f[9].toDouble(), s.stats.ci95);
      QCOMPARE(f[10].toDouble(), s.last);
    }
  }

  void pngAtDefaultSize() {
    PlotBoard* board = window_->liveBoard();
    board->refreshNow();
    LivePlot* loss = board->plotFor(MetricFamily::Loss);
    QVERIFY(loss);
    QCOMPARE(window_->exportSize(), QSize(1920, 1200));  // fresh settings: the default
    const QString path = QDir(tmp_.path()).filePath("loss.png");
    writePlotPng(loss->plot(), path);
    QImage img(path, "PNG");
    QVERIFY(!img.isNull());
    QCOMPARE(img.size(), QSize(1920, 1200));
    QVERIFY(distinctColors(img) > 8);  // curves, band, text: not a blank canvas
  }

  void markdownReportLinksPngs() {
    const QString path = QDir(tmp_.path()).filePath("report/report.md");
    QDir().mkpath(QFileInfo(path).absolutePath());
    ReportInput in;
    const std::filesystem::path run = runDir_.toStdString();
    in.summary = RunStore::loadSummary(run);
    in.environment = runEnvironment(run);
    in.profile = json::parse(readLines(runDir_ + "/profile.json").join('\n').toStdString());
    writeMarkdownReport(in, path, *window_->liveBoard(), QSize(800, 500));
    QFile f(path);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QString md = QString::fromUtf8(f.readAll());
    QVERIFY(md.contains("| stage | series | n | mean ± std | 95% CI | min | max | last |"));
    QVERIFY(md.contains("| host |"));
    // One table row per series, with core's mean ± std.
    for (const SeriesSummary& s : in.summary.series) {
      const QString row = QStringLiteral("| warm, \"up\" | %1 | %2 | %3 |")
                              .arg(QString::fromStdString(s.series))
                              .arg(s.stats.n)
                              .arg(formatMeanStd(s.stats));
      QVERIFY2(md.contains(row), qPrintable(row));
    }
    // Every linked image exists and decodes at the asked size.
    const QRegularExpression link(R"(!\[[^\]]*\]\(([^)]+\.png)\))");
    int images = 0;
    for (auto it = link.globalMatch(md); it.hasNext(); ++images) {
      const QString png = QFileInfo(path).absoluteDir().filePath(it.next().captured(1));
      QImage img(png, "PNG");
      QVERIFY2(!img.isNull(), qPrintable(png));
      QCOMPARE(img.size(), QSize(800, 500));
    }
    QCOMPARE(images, int(window_->liveBoard()->plots().size()));
    QVERIFY(md.contains("\"name\": \"warm, \\\"up\\\"\""));  // the profile as run
  }

  void failedWriteThrowsAndLeavesNothing() {
    const QString path = QDir(tmp_.path()).filePath("no-such-dir/samples.csv");
    bool threw = false;
    try {
      writeSamplesCsv(*window_->liveStore(), path);
    } catch (const RunError& e) {
      threw = QString::fromStdString(e.what()).contains("no-such-dir");
    }
    QVERIFY(threw);
    QVERIFY(!QFile::exists(path));
  }
};

QTEST_MAIN(TestExport)
#include "test_export.moc"
