// Every run directory under the runs root (the app's and gpt2-bench's alike), newest
// first, with its status from core (RunStore::loadSummary: finished, failed,
// cancelled, running, or interrupted when the writer died). Opening and comparing
// are requests to the main window; this widget only lists.
#pragma once

#include <QString>
#include <QStringList>
#include <QWidget>

class QFileSystemWatcher;
class QLabel;
class QPushButton;
class QTimer;
class QTreeWidget;

namespace wb::ui {

class RunHistory : public QWidget {
  Q_OBJECT
 public:
  enum Column { kRun, kStatus, kStarted, kDuration, kStages, kSamples, kColumns };

  explicit RunHistory(QWidget* parent = nullptr);
  void setRoot(const QString& root);
  QString root() const { return root_; }
  void refresh();
  QStringList selectedRuns() const;
  void selectRuns(const QStringList& dirs);
  QTreeWidget* list() const { return list_; }

 Q_SIGNALS:
  void openRequested(const QString& runDir);
  void compareRequested(const QStringList& runDirs);

 private:
  void selectionChanged();
  QString root_;
  QTreeWidget* list_;
  QLabel* rootLabel_;
  QPushButton* open_;
  QPushButton* compare_;
  QFileSystemWatcher* watcher_;
  QTimer* debounce_;
  QTimer* poll_;  // while some run is running, its status can change without a new directory
};

}  // namespace wb::ui
