// The workbench's main window: it wires the pieces (profile editor and model panel,
// live plots of the current run, run history, comparison, log, exports) to one
// RunController per run, and keeps window state, recent profiles and the export
// size in QSettings. Each piece lives in its own file; this one only connects them.
#pragma once

#include <QMainWindow>
#include <QSize>
#include <memory>

#include "ui/core_metatypes.h"
#include "core/run/stage_registry.h"

class QAction;
class QLabel;
class QMenu;
class QTabWidget;

namespace wb::ui {

class CompareView;
class LogPanel;
class MetricStore;
class ModelPanel;
class Notification;
class PlotBoard;
class ProfileEditor;
class RunController;
class RunHistory;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  enum Tab { kProfileTab, kLiveTab, kHistoryTab, kCompareTab };

  explicit MainWindow(const StageRegistry& registry = builtinStages(), QWidget* parent = nullptr);
  ~MainWindow() override;

  bool openProfile(const QString& path);
  void setRunsRoot(const QString& root);
  QString runsRoot() const { return runsRoot_; }
  void startRun();
  void cancelRun();
  void openRun(const QString& runDir);
  void compareRuns(const QStringList& runDirs);

  ProfileEditor* profileEditor() const { return editor_; }
  ModelPanel* modelPanel() const { return model_; }
  PlotBoard* liveBoard() const { return liveBoard_; }
  MetricStore* liveStore() const { return liveStore_; }
  RunHistory* runHistory() const { return history_; }
  PlotBoard* historyBoard() const { return historyBoard_; }
  CompareView* compareView() const { return compare_; }
  LogPanel* logPanel() const { return log_; }
  Notification* notification() const { return note_; }
  RunController* controller() const { return controller_.get(); }
  QTabWidget* tabs() const { return tabs_; }
  QString statusText() const;  // the status bar's run fields, joined
  QSize exportSize() const { return exportSize_; }

 Q_SIGNALS:
  void runFinished(wb::RunStatus status, const QString& message);

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  void buildMenus();
  void updateTitle();
  void updateActions();
  void addRecent(const QString& path);
  void rebuildRecentMenu();
  bool saveProfileAs();
  bool saveProfile();
  void onProgress(const Progress& p);
  void onRunFinished(RunStatus status, const QString& message);
  // The run and plots that exports act on: the History tab's opened run, else the live one.
  bool exportContext(QString* runDir, MetricStore** store, PlotBoard** board);
  void exportSamplesCsv();
  void exportSummaryCsv();
  void exportPlotsPng();
  void exportReport();
  void chooseExportSize();
  void fail(const QString& title, const QString& text);

  const StageRegistry& registry_;
  QString runsRoot_;
  QString profilePath_;
  QString lastRunDir_;
  QString openedRunDir_;
  QSize exportSize_;
  QTabWidget* tabs_;
  ProfileEditor* editor_;
  ModelPanel* model_;
  MetricStore* liveStore_;
  PlotBoard* liveBoard_;
  MetricStore* historyStore_;
  PlotBoard* historyBoard_;
  RunHistory* history_;
  CompareView* compare_;
  LogPanel* log_;
  Notification* note_;
  std::unique_ptr<RunController> controller_;
  QLabel* stageLabel_;
  QLabel* stepLabel_;
  QLabel* etaLabel_;
  QLabel* throughputLabel_;
  QAction* runAction_ = nullptr;
  QAction* cancelAction_ = nullptr;
  QAction* saveAction_ = nullptr;
  QMenu* recentMenu_ = nullptr;
};

}  // namespace wb::ui
