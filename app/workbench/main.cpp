// gpt2-workbench: the desktop app.
//   gpt2-workbench [--profile PATH|:/profiles/quick-tour.json] [--run] [--runs-dir DIR]
// Parses the command line and opens the main window; everything else is in ui/.
#include <QApplication>
#include <QCommandLineParser>
#include <QTimer>

#include "core/allocator_tuning.h"
#include "core/run/runner.h"
#include "ui/main_window.h"

int main(int argc, char** argv) {
  wb::tuneAllocatorForTensors(argv);
  // The built-in profiles live in wb_ui, a static library: its resource initialiser is
  // only linked in when referenced.
  Q_INIT_RESOURCE(resources);
  QApplication app(argc, argv);
  QApplication::setApplicationName("gpt2-workbench");
  QApplication::setOrganizationName("gpt2-workbench");
  QApplication::setApplicationVersion("0.1.0");

  QCommandLineParser parser;
  parser.setApplicationDescription("GPT-2 Optimization Workbench");
  parser.addHelpOption();
  parser.addVersionOption();
  const QCommandLineOption profile("profile", "Open this profile (a file, or :/profiles/quick-tour.json).", "PATH");
  const QCommandLineOption run("run", "Start running the profile right away.");
  const QCommandLineOption runsDir("runs-dir", "Where run directories go (default: " +
                                                   QString::fromStdString(wb::defaultRunsRoot().string()) + ").",
                                   "DIR");
  parser.addOptions({profile, run, runsDir});
  parser.process(app);

  wb::ui::MainWindow window;
  if (parser.isSet(runsDir)) window.setRunsRoot(parser.value(runsDir));
  const bool opened = !parser.isSet(profile) || window.openProfile(parser.value(profile));
  window.show();
  // After the window is up, so a failed start shows its notice in the window.
  if (parser.isSet(run) && opened) QTimer::singleShot(0, &window, &wb::ui::MainWindow::startRun);
  return QApplication::exec();
}
