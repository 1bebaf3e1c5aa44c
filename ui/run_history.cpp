// The list of runs; see run_history.h.
#include "ui/run_history.h"

#include <QDir>
#include <QFileSystemWatcher>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QThread>
#include <QTimer>
#include <QTreeWidget>
#include <QVBoxLayout>
#include <set>

#include "core/errors.h"

namespace wb::ui {

namespace {
QColor statusColor(RunStatus s) {
  switch (s) {
    case RunStatus::Finished: return QColor(46, 125, 50);
    case RunStatus::Failed: return QColor(192, 0, 0);
    case RunStatus::Cancelled: return QColor(179, 107, 0);
    case RunStatus::Interrupted: return QColor(120, 120, 120);
    case RunStatus::Running: return QColor(0, 114, 178);
  }
  return {};
}
}  // namespace

RunHistory::RunHistory(QWidget* parent)
    : QWidget(parent),
      list_(new QTreeWidget),
      rootLabel_(new QLabel),
      watcher_(new QFileSystemWatcher(this)),
      debounce_(new QTimer(this)),
      poll_(new QTimer(this)) {
  list_->setObjectName(QStringLiteral("runList"));
  list_->setColumnCount(kColumns);
  list_->setHeaderLabels({tr("Run"), tr("Status"), tr("Started (UTC)"), tr("Duration"), tr("Stages"), tr("Samples")});
  list_->setRootIsDecorated(false);
  list_->setSelectionMode(QAbstractItemView::ExtendedSelection);
  list_->setAlternatingRowColors(true);
  list_->header()->setSectionResizeMode(kRun, QHeaderView::Stretch);
  list_->header()->setStretchLastSection(false);
  rootLabel_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  auto* refresh = new QPushButton(tr("Refresh"));
  open_ = new QPushButton(tr("Open"));
  compare_ = new QPushButton(tr("Compare selected"));
  compare_->setObjectName(QStringLiteral("compareRuns"));
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(rootLabel_, 1);
  buttons->addWidget(refresh);
  buttons->addWidget(open_);
  buttons->addWidget(compare_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addLayout(buttons);
  layout->addWidget(list_, 1);

  connect(refresh, &QPushButton::clicked, this, &RunHistory::refresh);
  connect(open_, &QPushButton::clicked, this, [this] {
    const QStringList runs = selectedRuns();
    if (!runs.isEmpty()) Q_EMIT openRequested(runs.front());
  });
  connect(compare_, &QPushButton::clicked, this, [this] {
    const QStringList runs = selectedRuns();
    if (runs.size() >= 2) Q_EMIT compareRequested(runs);
  });
  connect(list_, &QTreeWidget::itemDoubleClicked, this, [this](QTreeWidgetItem* item) {
    Q_EMIT openRequested(item->data(kRun, Qt::UserRole).toString());
  });
  connect(list_, &QTreeWidget::itemSelectionChanged, this, &RunHistory::selectionChanged);
  debounce_->setSingleShot(true);
  debounce_->setInterval(300);
  connect(debounce_, &QTimer::timeout, this, &RunHistory::refresh);
  connect(watcher_, &QFileSystemWatcher::directoryChanged, debounce_, qOverload<>(&QTimer::start));
  poll_->setInterval(3000);
  connect(poll_, &QTimer::timeout, this, &RunHistory::refresh);
  selectionChanged();
}

void RunHistory::setRoot(const QString& root) {
  if (!watcher_->directories().isEmpty()) watcher_->removePaths(watcher_->directories());
  root_ = root;
  rootLabel_->setText(tr("Runs in %1").arg(QDir::toNativeSeparators(root)));
  QDir().mkpath(root);
  watcher_->addPath(root);
  refresh();
}

RunHistory::~RunHistory() {
  // The scan reads files only; let it finish rather than leave it touching `this`.
  if (scanner_) scanner_->wait();
}

std::vector<RunHistory::Row> RunHistory::scan(const QString& root) {
  std::vector<Row> rows;
  for (const auto& dir : RunStore::listRuns(root.toStdString())) {
    Row r;
    r.path = QString::fromStdString(dir.string());
    r.dirName = QString::fromStdString(dir.filename().string());
    try {
      r.summary = RunStore::loadSummary(dir);
      r.ok = true;
    } catch (const std::exception& e) {
      r.error = QString::fromStdString(e.what());
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

void RunHistory::refresh() {
  if (scanner_) {
    rescan_ = true;
    return;
  }
  const QString root = root_;
  scanner_.reset(QThread::create([this, root] {
    std::vector<Row> rows = scan(root);
    // Delivered on the GUI thread; dropped by Qt if this widget is gone by then.
    QMetaObject::invokeMethod(
        this, [this, rows = std::move(rows)]() mutable { apply(std::move(rows)); }, Qt::QueuedConnection);
  }));
  scanner_->start();
}

void RunHistory::refreshNow() { apply(scan(root_)); }

void RunHistory::apply(std::vector<Row> rows) {
  if (scanner_) {
    scanner_->wait();  // it posted this call as its last act
    scanner_.reset();
  }
  const QStringList selected = selectedRuns();
  list_->clear();
  bool anyRunning = false;
  for (const Row& r : rows) {
    auto* item = new QTreeWidgetItem;
    item->setText(kRun, r.dirName);
    item->setData(kRun, Qt::UserRole, r.path);
    item->setToolTip(kRun, r.path);
    if (r.ok) {
      const RunSummary& s = r.summary;
      item->setText(kStatus, QString::fromLatin1(toString(s.status)));
      item->setForeground(kStatus, statusColor(s.status));
      item->setToolTip(kStatus, QString::fromStdString(s.message));
      item->setText(kStarted, QString::fromStdString(s.startedUtc));
      item->setText(kDuration, QStringLiteral("%1 s").arg(s.durationSeconds, 0, 'f', 1));
      QStringList stages;
      for (const auto& st : s.stages) stages << QString::fromStdString(st);
      item->setText(kStages, stages.join(QStringLiteral(", ")));
      int64_t samples = 0;
      for (const auto& ser : s.series) samples += ser.stats.n;
      item->setText(kSamples, QString::number(samples));
      anyRunning = anyRunning || s.status == RunStatus::Running;
    } else {
      item->setText(kStatus, tr("unreadable"));
      item->setToolTip(kStatus, r.error);
    }
    list_->addTopLevelItem(item);
  }
  for (int c = 1; c < kColumns; ++c) list_->resizeColumnToContents(c);
  selectRuns(selected);
  if (anyRunning && !poll_->isActive()) poll_->start();
  if (!anyRunning) poll_->stop();
  Q_EMIT refreshed();
  if (rescan_) {
    rescan_ = false;
    refresh();
  }
}

QStringList RunHistory::selectedRuns() const {
  QStringList out;
  // In list order (newest first), not click order: comparisons read consistently.
  for (int i = 0; i < list_->topLevelItemCount(); ++i) {
    QTreeWidgetItem* item = list_->topLevelItem(i);
    if (item->isSelected()) out << item->data(kRun, Qt::UserRole).toString();
  }
  return out;
}

void RunHistory::selectRuns(const QStringList& dirs) {
  const std::set<QString> wanted(dirs.begin(), dirs.end());
  for (int i = 0; i < list_->topLevelItemCount(); ++i) {
    QTreeWidgetItem* item = list_->topLevelItem(i);
    item->setSelected(wanted.count(item->data(kRun, Qt::UserRole).toString()) > 0);
  }
}

void RunHistory::selectionChanged() {
  const int n = static_cast<int>(list_->selectedItems().size());
  open_->setEnabled(n >= 1);
  compare_->setEnabled(n >= 2);
}

}  // namespace wb::ui
