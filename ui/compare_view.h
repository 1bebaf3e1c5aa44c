// Two or more runs side by side: their curves overlaid per metric family (one
// PlotBoard over one MetricStore per run) and a table of each series' summary
// from core (mean ± std, 95% CI, last) with the difference and ratio to the first
// run, the baseline. It reads run directories; it never writes to them.
#pragma once

#include <QString>
#include <QStringList>
#include <QWidget>
#include <memory>
#include <utility>
#include <vector>

#include "core/run/run_store.h"

class QTableWidget;
class QLabel;

namespace wb::ui {

class MetricStore;
class PlotBoard;

struct ComparisonRow {
  QString stage, series, run;
  StatsSummary stats;
  double last = 0.0;
  bool baseline = false;      // the first run's row (no difference)
  bool comparable = false;    // the baseline has this series too
  double difference = 0.0;    // mean - baseline mean
  double differenceCi = 0.0;  // half-width: sqrt(ci95² + baseline ci95²)
  double ratio = 0.0;         // mean / baseline mean (0 when the baseline mean is 0)
};

// Rows grouped by series (baseline order first), one per run that has the series.
std::vector<ComparisonRow> compareSummaries(const std::vector<std::pair<QString, RunSummary>>& runs);

class CompareView : public QWidget {
  Q_OBJECT
 public:
  enum Column { kStage, kSeries, kRun, kN, kMeanStd, kCi, kLast, kDiff, kRatio, kColumns };

  explicit CompareView(QWidget* parent = nullptr);
  ~CompareView() override;
  // Loads every run's events and summary; false with `error` when one cannot be read.
  bool setRuns(const QStringList& runDirs, QString* error = nullptr);
  QStringList runs() const { return runs_; }
  PlotBoard* board() const { return board_; }
  QTableWidget* table() const { return table_; }
  const std::vector<ComparisonRow>& rows() const { return rows_; }

 private:
  QStringList runs_;
  std::vector<std::unique_ptr<MetricStore>> stores_;
  std::vector<ComparisonRow> rows_;
  PlotBoard* board_;
  QTableWidget* table_;
  QLabel* header_;
};

}  // namespace wb::ui
