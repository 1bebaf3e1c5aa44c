// Every run directory under the runs root (the app's and gpt2-bench's alike), newest
// first, with its status from core (RunStore::loadSummary: finished, failed,
// cancelled, running, or interrupted when the writer died). Opening and comparing
// are requests to the main window; this widget only lists. Summaries are read on a
// background thread: a running run's summary means parsing its whole events.jsonl.
#pragma once

#include <QString>
#include <QStringList>
#include <QWidget>
#include <memory>
#include <vector>

#include "core/run/run_store.h"

class QFileSystemWatcher;
class QLabel;
class QPushButton;
class QThread;
class QTimer;
class QTreeWidget;

namespace wb::ui {

class RunHistory : public QWidget {
  Q_OBJECT
 public:
  enum Column { kRun, kStatus, kStarted, kDuration, kStages, kSamples, kColumns };

  explicit RunHistory(QWidget* parent = nullptr);
  ~RunHistory() override;
  void setRoot(const QString& root);
  QString root() const { return root_; }
  // Rescans in the background; the list changes (and refreshed() fires) when done.
  void refresh();
  // The same scan on the calling thread (tests, and callers that need the list now).
  void refreshNow();
  QStringList selectedRuns() const;
  void selectRuns(const QStringList& dirs);
  QTreeWidget* list() const { return list_; }

 Q_SIGNALS:
  void openRequested(const QString& runDir);
  void compareRequested(const QStringList& runDirs);
  void refreshed();

 private:
  struct Row {
    QString path, dirName;
    bool ok = false;
    RunSummary summary;
    QString error;
  };
  static std::vector<Row> scan(const QString& root);
  void apply(std::vector<Row> rows);
  void selectionChanged();
  QString root_;
  QTreeWidget* list_;
  QLabel* rootLabel_;
  QPushButton* open_;
  QPushButton* compare_;
  QFileSystemWatcher* watcher_;
  QTimer* debounce_;
  QTimer* poll_;  // while some run is running, its status can change without a new directory
  std::unique_ptr<QThread> scanner_;
  bool rescan_ = false;  // a refresh was asked for while a scan was running
};

}  // namespace wb::ui
