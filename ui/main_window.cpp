// The workbench's main window; see main_window.h.
#include "ui/main_window.h"

#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QInputDialog>
#include <QLabel>
#include <QLocale>
#include <QMenuBar>
#include <QMessageBox>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>

#include "core/errors.h"
#include "core/run/run_store.h"
#include "core/run/runner.h"
#include "ui/compare_view.h"
#include "ui/export.h"
#include "ui/log_panel.h"
#include "ui/metric_store.h"
#include "ui/model_panel.h"
#include "ui/notification.h"
#include "ui/plot_board.h"
#include "ui/profile_editor.h"
#include "ui/run_controller.h"
#include "ui/run_history.h"

namespace wb::ui {

namespace {

constexpr int kMaxRecent = 8;

QString formatDuration(double seconds) {
  if (seconds < 0) return QStringLiteral("?");
  const auto s = static_cast<qint64>(seconds + 0.5);
  if (s < 60) return QStringLiteral("%1 s").arg(s);
  if (s < 3600) return QStringLiteral("%1 min %2 s").arg(s / 60).arg(s % 60);
  return QStringLiteral("%1 h %2 min").arg(s / 3600).arg((s % 3600) / 60);
}

}  // namespace

MainWindow::MainWindow(const StageRegistry& registry, QWidget* parent)
    : QMainWindow(parent),
      registry_(registry),
      tabs_(new QTabWidget),
      editor_(new ProfileEditor(registry)),
      model_(new ModelPanel),
      liveStore_(new MetricStore(this)),
      liveBoard_(new PlotBoard),
      historyStore_(new MetricStore(this)),
      historyBoard_(new PlotBoard),
      history_(new RunHistory),
      compare_(new CompareView),
      log_(new LogPanel) {
  setObjectName(QStringLiteral("mainWindow"));
  qRegisterMetaType<wb::MetricSample>();
  qRegisterMetaType<std::vector<wb::MetricSample>>();
  qRegisterMetaType<wb::LogLine>();
  qRegisterMetaType<wb::Progress>();
  qRegisterMetaType<wb::RunStatus>();

  auto* profileSplit = new QSplitter(Qt::Horizontal);
  profileSplit->addWidget(editor_);
  profileSplit->addWidget(model_);
  profileSplit->setStretchFactor(0, 3);
  profileSplit->setStretchFactor(1, 1);
  liveBoard_->addStore(liveStore_);
  historyBoard_->addStore(historyStore_);
  auto* historySplit = new QSplitter(Qt::Vertical);
  historySplit->addWidget(history_);
  historySplit->addWidget(historyBoard_);
  historySplit->setStretchFactor(1, 2);
  tabs_->addTab(profileSplit, tr("Profile"));
  tabs_->addTab(liveBoard_, tr("Live"));
  tabs_->addTab(historySplit, tr("History"));
  tabs_->addTab(compare_, tr("Compare"));
  setCentralWidget(tabs_);

  auto* logDock = new QDockWidget(tr("Log"), this);
  logDock->setObjectName(QStringLiteral("logDock"));
  logDock->setWidget(log_);
  addDockWidget(Qt::BottomDockWidgetArea, logDock);

  stageLabel_ = new QLabel;
  stepLabel_ = new QLabel;
  etaLabel_ = new QLabel;
  throughputLabel_ = new QLabel;
  for (QLabel* l : {stageLabel_, stepLabel_, etaLabel_, throughputLabel_}) statusBar()->addPermanentWidget(l);
  note_ = new Notification(this);

  connect(editor_, &ProfileEditor::changed, this, [this] {
    const auto& doc = editor_->document();
    const QString dtype = doc.contains("device") && doc["device"].is_object() && doc["device"].contains("dtype") &&
                                  doc["device"]["dtype"].is_string()
                              ? QString::fromStdString(doc["device"]["dtype"].get<std::string>())
                              : QStringLiteral("fp32");
    model_->setModel(doc.contains("model") ? doc["model"] : nlohmann::json(), dtype);
    updateActions();
  });
  connect(editor_, &ProfileEditor::modifiedChanged, this, &MainWindow::updateTitle);
  connect(model_, &ModelPanel::modelChosen, this,
          [this](const nlohmann::json& m) { editor_->setField(QStringLiteral("/model"), m); });
  connect(history_, &RunHistory::openRequested, this, &MainWindow::openRun);
  connect(history_, &RunHistory::compareRequested, this, &MainWindow::compareRuns);

  buildMenus();
  QSettings settings;
  exportSize_ = settings.value(QStringLiteral("export/size"), kDefaultExportSize).toSize();
  if (!exportSize_.isValid()) exportSize_ = kDefaultExportSize;
  if (!restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray())) resize(1600, 1000);
  if (!restoreState(settings.value(QStringLiteral("window/state")).toByteArray()))
    resizeDocks({logDock}, {140}, Qt::Vertical);
  setRunsRoot(QString::fromStdString(defaultRunsRoot().string()));
  updateTitle();
  updateActions();
}

MainWindow::~MainWindow() = default;

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  QAction* open = file->addAction(tr("&Open profile…"), this, [this] {
    QSettings s;
    const QString path = QFileDialog::getOpenFileName(this, tr("Open profile"), s.value("profiles/lastDir").toString(),
                                                      tr("Profiles (*.json);;All files (*)"));
    if (!path.isEmpty()) openProfile(path);
  });
  open->setShortcut(QKeySequence::Open);
  recentMenu_ = file->addMenu(tr("Open &recent"));
  rebuildRecentMenu();
  saveAction_ = file->addAction(tr("&Save profile"), this, &MainWindow::saveProfile);
  saveAction_->setShortcut(QKeySequence::Save);
  QAction* saveAs = file->addAction(tr("Save profile &as…"), this, &MainWindow::saveProfileAs);
  saveAs->setShortcut(QKeySequence::SaveAs);
  file->addSeparator();
  QMenu* exp = file->addMenu(tr("&Export"));
  exp->addAction(tr("Samples as CSV…"), this, &MainWindow::exportSamplesCsv);
  exp->addAction(tr("Summary table as CSV…"), this, &MainWindow::exportSummaryCsv);
  exp->addAction(tr("Plots as PNG…"), this, &MainWindow::exportPlotsPng);
  exp->addAction(tr("Markdown report…"), this, &MainWindow::exportReport);
  exp->addSeparator();
  exp->addAction(tr("PNG size…"), this, &MainWindow::chooseExportSize);
  file->addAction(tr("Runs folder…"), this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Runs folder"), runsRoot_);
    if (!dir.isEmpty()) setRunsRoot(dir);
  });
  file->addSeparator();
  QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  QMenu* run = menuBar()->addMenu(tr("&Run"));
  runAction_ = run->addAction(tr("&Run profile"), this, &MainWindow::startRun);
  runAction_->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_R));
  cancelAction_ = run->addAction(tr("&Cancel run"), this, &MainWindow::cancelRun);
  cancelAction_->setShortcut(QKeySequence(Qt::Key_Escape));

  QMenu* view = menuBar()->addMenu(tr("&View"));
  for (int i = 0; i < tabs_->count(); ++i) {
    QAction* a = view->addAction(tabs_->tabText(i), this, [this, i] { tabs_->setCurrentIndex(i); });
    a->setShortcut(QKeySequence(Qt::ALT | (Qt::Key_1 + i)));
  }
  view->addSeparator();
  view->addAction(tr("Refresh run history"), history_, &RunHistory::refresh);
}

bool MainWindow::openProfile(const QString& path) {
  QString error;
  if (!editor_->load(path, &error)) {
    fail(tr("Cannot open profile"), error);
    return false;
  }
  // Resource profiles (":/...") are templates: saving asks for a real file.
  profilePath_ = path.startsWith(QLatin1Char(':')) ? QString() : path;
  if (!profilePath_.isEmpty()) addRecent(path);
  log_->appendNote(tr("opened profile %1").arg(path));
  tabs_->setCurrentIndex(kProfileTab);
  updateTitle();
  return true;
}

bool MainWindow::saveProfile() {
  if (profilePath_.isEmpty()) return saveProfileAs();
  QString error;
  if (!editor_->save(profilePath_, &error)) {
    fail(tr("Cannot save profile"), error);
    return false;
  }
  statusBar()->showMessage(tr("saved %1").arg(profilePath_), 4000);
  return true;
}

bool MainWindow::saveProfileAs() {
  QSettings s;
  const QString path = QFileDialog::getSaveFileName(this, tr("Save profile"), s.value("profiles/lastDir").toString(),
                                                    tr("Profiles (*.json)"));
  if (path.isEmpty()) return false;
  profilePath_ = path;
  addRecent(path);
  updateTitle();
  return saveProfile();
}

void MainWindow::addRecent(const QString& path) {
  QSettings s;
  const QString abs = QFileInfo(path).absoluteFilePath();
  QStringList recent = s.value(QStringLiteral("profiles/recent")).toStringList();
  recent.removeAll(abs);
  recent.prepend(abs);
  while (recent.size() > kMaxRecent) recent.removeLast();
  s.setValue(QStringLiteral("profiles/recent"), recent);
  s.setValue(QStringLiteral("profiles/lastDir"), QFileInfo(abs).absolutePath());
  rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu() {
  recentMenu_->clear();
  const QStringList recent = QSettings().value(QStringLiteral("profiles/recent")).toStringList();
  for (const QString& p : recent) recentMenu_->addAction(p, this, [this, p] { openProfile(p); });
  recentMenu_->setEnabled(!recent.isEmpty());
}

void MainWindow::setRunsRoot(const QString& root) {
  runsRoot_ = root;
  history_->setRoot(root);
}

void MainWindow::updateTitle() {
  const QString name = profilePath_.isEmpty() ? (editor_->sourceName().startsWith(QLatin1Char(':'))
                                                      ? QFileInfo(editor_->sourceName()).fileName()
                                                      : tr("untitled"))
                                              : QFileInfo(profilePath_).fileName();
  setWindowTitle(QStringLiteral("%1%2 — GPT-2 Workbench").arg(name, editor_->isModified() ? QStringLiteral(" *") : QString()));
}

void MainWindow::updateActions() {
  const bool running = controller_ && controller_->isRunning();
  if (runAction_) runAction_->setEnabled(!running);
  if (cancelAction_) cancelAction_->setEnabled(running);
}

void MainWindow::fail(const QString& title, const QString& text) {
  log_->appendNote(title + QStringLiteral(": ") + text, LogLevel::Error);
  note_->showMessage(title, text, true);
}

void MainWindow::startRun() {
  if (controller_ && controller_->isRunning()) return;
  if (!editor_->isValid()) {
    tabs_->setCurrentIndex(kProfileTab);
    fail(tr("The profile is not valid"), editor_->errorPointer().isEmpty()
                                             ? editor_->errorMessage()
                                             : editor_->errorPointer() + QStringLiteral(": ") + editor_->errorMessage());
    return;
  }
  controller_.reset();  // the previous run's thread has ended; free it
  liveStore_->clear();
  controller_ = std::make_unique<RunController>(*editor_->profile(), runsRoot_.toStdString(), registry_);
  RunController* c = controller_.get();
  connect(c, &RunController::samplesArrived, liveStore_, &MetricStore::append);
  connect(c, &RunController::logArrived, log_, &LogPanel::appendLine);
  connect(c, &RunController::progressChanged, this, &MainWindow::onProgress);
  connect(c, &RunController::runStarted, this, [this](const QString& dir) {
    lastRunDir_ = dir;
    log_->appendNote(tr("run started in %1").arg(dir));
    history_->refresh();
  });
  connect(c, &RunController::stageStarted, this, [this](int index, const QString& type, const QString& name) {
    stageLabel_->setText(tr("stage %1 %2 (%3)").arg(index + 1).arg(name, type));
    stepLabel_->clear();
    etaLabel_->clear();
    throughputLabel_->clear();
  });
  connect(c, &RunController::runFinished, this, &MainWindow::onRunFinished);
  log_->appendNote(tr("running profile \"%1\"").arg(QString::fromStdString(editor_->profile()->name)));
  tabs_->setCurrentIndex(kLiveTab);
  c->start();
  updateActions();
}

void MainWindow::cancelRun() {
  if (!controller_ || !controller_->isRunning()) return;
  controller_->cancel();
  statusBar()->showMessage(tr("cancelling at the next step…"));
}

void MainWindow::onProgress(const Progress& p) {
  stepLabel_->setText(p.total > 0 ? tr("step %1/%2").arg(p.step).arg(p.total) : tr("step %1").arg(p.step));
  etaLabel_->setText(p.etaSeconds >= 0 ? tr("ETA %1").arg(formatDuration(p.etaSeconds)) : QString());
  throughputLabel_->setText(p.throughput > 0 ? QStringLiteral("%1 %2").arg(QLocale(QLocale::English).toString(p.throughput, 'f', 1),
                                                                           QString::fromStdString(p.throughputUnit))
                                             : QString());
}

QString MainWindow::statusText() const {
  QStringList parts;
  for (QLabel* l : {stageLabel_, stepLabel_, etaLabel_, throughputLabel_})
    if (!l->text().isEmpty()) parts << l->text();
  return parts.join(QStringLiteral(" · "));
}

void MainWindow::onRunFinished(RunStatus status, const QString& message) {
  statusBar()->clearMessage();
  etaLabel_->clear();
  const QString name = controller_ ? QString::fromStdString(controller_->profile().name) : QString();
  const QString dir = controller_ ? controller_->runDir() : QString();
  switch (status) {
    case RunStatus::Finished:
      note_->showMessage(tr("Run finished"), tr("%1 finished: %2").arg(name, dir), false);
      break;
    case RunStatus::Cancelled:
      note_->showMessage(tr("Run cancelled"), message, false);
      break;
    default:
      note_->showMessage(tr("Run failed"), message, true);
      break;
  }
  log_->appendNote(tr("run %1%2").arg(QString::fromLatin1(toString(status)),
                                      message.isEmpty() ? QString() : QStringLiteral(": ") + message),
                   status == RunStatus::Failed ? LogLevel::Error : LogLevel::Info);
  history_->refresh();
  updateActions();
  Q_EMIT runFinished(status, message);
}

void MainWindow::openRun(const QString& runDir) {
  try {
    historyStore_->clear();
    historyStore_->append(samplesFromEvents(RunStore::readEvents(runDir.toStdString())));
  } catch (const Error& e) {
    fail(tr("Cannot open run"), QString::fromStdString(e.what()));
    return;
  }
  openedRunDir_ = runDir;
  historyBoard_->refreshNow();
  tabs_->setCurrentIndex(kHistoryTab);
}

void MainWindow::compareRuns(const QStringList& runDirs) {
  QString error;
  if (!compare_->setRuns(runDirs, &error)) {
    fail(tr("Cannot compare runs"), error);
    return;
  }
  tabs_->setCurrentIndex(kCompareTab);
}

bool MainWindow::exportContext(QString* runDir, MetricStore** store, PlotBoard** board) {
  if (tabs_->currentIndex() == kHistoryTab && !openedRunDir_.isEmpty()) {
    *runDir = openedRunDir_;
    *store = historyStore_;
    *board = historyBoard_;
  } else {
    *runDir = lastRunDir_;
    *store = liveStore_;
    *board = liveBoard_;
  }
  if (runDir->isEmpty()) {
    fail(tr("Nothing to export"), tr("Run a profile, or open a run in History first."));
    return false;
  }
  return true;
}

void MainWindow::exportSamplesCsv() {
  QString dir;
  MetricStore* store;
  PlotBoard* board;
  if (!exportContext(&dir, &store, &board)) return;
  const QString path = QFileDialog::getSaveFileName(this, tr("Export samples"), dir + QStringLiteral("/samples.csv"),
                                                    tr("CSV (*.csv)"));
  if (path.isEmpty()) return;
  try {
    writeSamplesCsv(*store, path);
    log_->appendNote(tr("wrote %1").arg(path));
  } catch (const Error& e) {
    fail(tr("Export failed"), QString::fromStdString(e.what()));
  }
}

void MainWindow::exportSummaryCsv() {
  QString dir;
  MetricStore* store;
  PlotBoard* board;
  if (!exportContext(&dir, &store, &board)) return;
  const QString path = QFileDialog::getSaveFileName(this, tr("Export summary"), dir + QStringLiteral("/summary.csv"),
                                                    tr("CSV (*.csv)"));
  if (path.isEmpty()) return;
  try {
    writeSummaryCsv(RunStore::loadSummary(dir.toStdString()), path);
    log_->appendNote(tr("wrote %1").arg(path));
  } catch (const Error& e) {
    fail(tr("Export failed"), QString::fromStdString(e.what()));
  }
}

void MainWindow::exportPlotsPng() {
  PlotBoard* board = liveBoard_;
  if (tabs_->currentIndex() == kHistoryTab) board = historyBoard_;
  if (tabs_->currentIndex() == kCompareTab) board = compare_->board();
  const QString dir = QFileDialog::getExistingDirectory(this, tr("Folder for the PNGs"),
                                                        lastRunDir_.isEmpty() ? QDir::homePath() : lastRunDir_);
  if (dir.isEmpty()) return;
  try {
    const QStringList files = writeBoardPngs(*board, dir, exportSize_);
    log_->appendNote(tr("wrote %1 PNG(s) to %2").arg(files.size()).arg(dir));
  } catch (const Error& e) {
    fail(tr("Export failed"), QString::fromStdString(e.what()));
  }
}

void MainWindow::exportReport() {
  QString dir;
  MetricStore* store;
  PlotBoard* board;
  if (!exportContext(&dir, &store, &board)) return;
  const QString path = QFileDialog::getSaveFileName(this, tr("Export report"), dir + QStringLiteral("/report.md"),
                                                    tr("Markdown (*.md)"));
  if (path.isEmpty()) return;
  try {
    ReportInput in;
    const std::filesystem::path run = dir.toStdString();
    in.summary = RunStore::loadSummary(run);
    in.environment = runEnvironment(run);
    QFile profile(dir + QStringLiteral("/profile.json"));
    if (profile.open(QIODevice::ReadOnly))
      in.profile = nlohmann::json::parse(profile.readAll().toStdString(), nullptr, false);
    if (in.profile.is_discarded()) in.profile = nullptr;
    writeMarkdownReport(in, path, *board, exportSize_);
    log_->appendNote(tr("wrote %1").arg(path));
  } catch (const Error& e) {
    fail(tr("Export failed"), QString::fromStdString(e.what()));
  }
}

void MainWindow::chooseExportSize() {
  bool ok = false;
  const QString text = QInputDialog::getText(this, tr("PNG size"), tr("Width × height in pixels:"), QLineEdit::Normal,
                                             QStringLiteral("%1x%2").arg(exportSize_.width()).arg(exportSize_.height()), &ok);
  if (!ok) return;
  const QStringList parts = text.toLower().replace(QStringLiteral("×"), QStringLiteral("x")).split(QLatin1Char('x'));
  const int w = parts.value(0).trimmed().toInt(), h = parts.value(1).trimmed().toInt();
  if (parts.size() != 2 || w < 16 || h < 16 || w > 16384 || h > 16384) {
    fail(tr("Invalid size"), tr("expected WIDTHxHEIGHT between 16 and 16384, got \"%1\"").arg(text));
    return;
  }
  exportSize_ = QSize(w, h);
  QSettings().setValue(QStringLiteral("export/size"), exportSize_);
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (editor_->isModified() && !profilePath_.isEmpty()) {
    const auto answer = QMessageBox::question(this, tr("Unsaved profile"), tr("Save changes to %1?").arg(profilePath_),
                                              QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel);
    if (answer == QMessageBox::Cancel || (answer == QMessageBox::Save && !saveProfile())) {
      event->ignore();
      return;
    }
  }
  QSettings s;
  s.setValue(QStringLiteral("window/geometry"), saveGeometry());
  s.setValue(QStringLiteral("window/state"), saveState());
  // Stages check the cancel token every step, so this waits at most one step.
  controller_.reset();
  event->accept();
}

}  // namespace wb::ui
