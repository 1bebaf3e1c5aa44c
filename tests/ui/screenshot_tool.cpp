// wb_screenshots: renders the workbench for docs/screenshots/ (scripts/screenshots runs
// it under Xvfb). It opens the real main window, runs a profile, grabs the window in
// the middle of the run, runs it a second time with another seed, and grabs the
// compare view of the two runs. With --synthetic it uses the UI tests' synthetic
// stage instead of the built-in stages (no model needed; also the ctest smoke test).
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QEventLoop>
#include <QPixmap>
#include <QTemporaryDir>
#include <QTimer>
#include <cstdio>

#include "core/run/runner.h"
#include "tests/support/ui_test_stages.h"
#include "ui/main_window.h"
#include "ui/plot_board.h"
#include "ui/profile_editor.h"
#include "ui/run_controller.h"

using namespace wb;
using namespace wb::ui;

namespace {

void pump(int ms) {
  QEventLoop loop;
  QTimer::singleShot(ms, &loop, &QEventLoop::quit);
  loop.exec();
}

// Runs the editor's profile; returns when `midRun` (fraction of the steps of the
// longest-running stage seen so far) is reached, or at the end when midRun <= 0.
bool run(MainWindow& w, double midRun, int timeoutMs, RunStatus* status) {
  QEventLoop loop;
  bool ended = false;
  *status = RunStatus::Running;
  QTimer timeout;
  timeout.setSingleShot(true);
  QObject::connect(&timeout, &QTimer::timeout, &loop, &QEventLoop::quit);
  QObject::connect(&w, &MainWindow::runFinished, &loop, [&](RunStatus s) {
    ended = true;
    *status = s;
    loop.quit();
  });
  w.startRun();
  if (!w.controller()) return false;
  if (midRun > 0) {
    QObject::connect(w.controller(), &RunController::progressChanged, &loop, [&](const Progress& p) {
      if (p.total > 0 && double(p.step) / double(p.total) >= midRun) loop.quit();
    });
  }
  timeout.start(timeoutMs);
  loop.exec();
  QObject::disconnect(&w, &MainWindow::runFinished, &loop, nullptr);
  return midRun > 0 ? w.controller()->isRunning() || ended : ended;
}

bool save(QWidget& w, const QString& path) {
  const QPixmap pixmap = w.grab();
  if (pixmap.isNull() || !pixmap.save(path, "PNG")) {
    std::fprintf(stderr, "wb_screenshots: cannot write %s\n", qPrintable(path));
    return false;
  }
  std::printf("wrote %s (%dx%d)\n", qPrintable(path), pixmap.width(), pixmap.height());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setApplicationName("gpt2-workbench-screenshots");
  QApplication::setOrganizationName("gpt2-workbench");
  QCommandLineParser parser;
  parser.setApplicationDescription("Renders the workbench's screenshots");
  parser.addHelpOption();
  const QCommandLineOption out("out", "Folder for the PNGs.", "DIR", "docs/screenshots");
  const QCommandLineOption profile("profile", "Profile to run (built-in stages).", "PATH", ":/profiles/quick-tour.json");
  const QCommandLineOption synthetic("synthetic", "Use the UI tests' synthetic stage instead of the built-in stages.");
  const QCommandLineOption quick("quick", "A short synthetic run (smoke test).");
  const QCommandLineOption runsDir("runs-dir", "Where the runs go (default: a temporary folder).", "DIR");
  const QCommandLineOption size("size", "Window size.", "WxH", "1920x1080");
  parser.addOptions({out, profile, synthetic, quick, runsDir, size});
  parser.process(app);

  QTemporaryDir tmp;
  const QString root = parser.isSet(runsDir) ? parser.value(runsDir) : tmp.filePath("runs");
  qputenv("WB_RUNS_DIR", root.toUtf8());
  const bool synth = parser.isSet(synthetic) || parser.isSet(quick);
  MainWindow w(synth ? test::uiTestStages() : builtinStages());
  w.setRunsRoot(root);
  const QStringList wh = parser.value(size).split('x');
  w.resize(wh.value(0).toInt(), wh.value(1).toInt());
  w.show();

  nlohmann::json first, second;
  if (synth) {
    const nlohmann::json stage = parser.isSet(quick)
                                     ? nlohmann::json{{"steps", 40}, {"step_ms", 5}, {"bench_points", 3}}
                                     : nlohmann::json{{"steps", 900}, {"step_ms", 12}, {"eval_every", 50},
                                                      {"bench_points", 6}, {"repeats", 8}, {"noise", 0.15}};
    first = test::synthProfile("synthetic-tour", stage, 1337);
    nlohmann::json faster = stage;
    faster["scale"] = 0.8;
    second = test::synthProfile("synthetic-tour", faster, 7);
    w.profileEditor()->setText(QString::fromStdString(first.dump(2)));
  } else if (!w.openProfile(parser.value(profile))) {
    return 2;
  }
  if (!w.profileEditor()->isValid()) {
    std::fprintf(stderr, "wb_screenshots: the profile is not valid: %s %s\n", qPrintable(w.profileEditor()->errorPointer()),
                 qPrintable(w.profileEditor()->errorMessage()));
    return 2;
  }
  const QString dir = parser.value(out);
  QDir().mkpath(dir);
  pump(300);
  if (!save(w, dir + "/profile-editor.png")) return 3;

  RunStatus status;
  const int timeoutMs = 30 * 60 * 1000;
  if (!run(w, 0.5, timeoutMs, &status)) {
    std::fprintf(stderr, "wb_screenshots: the run did not reach its middle\n");
    return 3;
  }
  pump(400);  // let the 30 Hz timer draw what arrived
  if (!save(w, dir + "/main-window-running.png")) return 3;
  // Let the first run finish.
  if (w.controller()->isRunning()) {
    QEventLoop loop;
    QObject::connect(&w, &MainWindow::runFinished, &loop, &QEventLoop::quit);
    loop.exec();
  }
  if (w.controller()->status() != RunStatus::Finished) {
    std::fprintf(stderr, "wb_screenshots: the first run ended %s\n", toString(w.controller()->status()));
    return 3;
  }
  const QString firstDir = w.controller()->runDir();

  // The second run: another seed (and, synthetic, another scale) to compare against.
  if (synth) {
    w.profileEditor()->setText(QString::fromStdString(second.dump(2)));
  } else {
    nlohmann::json doc = w.profileEditor()->document();
    doc["seed"] = doc.value("seed", 1337) + 1;
    w.profileEditor()->setText(QString::fromStdString(doc.dump(2)));
  }
  if (!run(w, 0.0, timeoutMs, &status) || status != RunStatus::Finished) {
    std::fprintf(stderr, "wb_screenshots: the second run ended %s\n", toString(status));
    return 3;
  }
  w.compareRuns({firstDir, w.controller()->runDir()});
  pump(400);
  if (!save(w, dir + "/compare-view.png")) return 3;
  return 0;
}
