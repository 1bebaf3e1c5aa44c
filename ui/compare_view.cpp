// Run comparison; see compare_view.h.
#include "ui/compare_view.h"

#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/errors.h"
#include "ui/export.h"
#include "ui/metric_store.h"
#include "ui/plot_board.h"

namespace wb::ui {

std::vector<ComparisonRow> compareSummaries(const std::vector<std::pair<QString, RunSummary>>& runs) {
  std::vector<ComparisonRow> rows;
  if (runs.empty()) return rows;
  using Key = std::pair<std::string, std::string>;
  std::vector<Key> order;
  std::map<Key, bool> seen;
  for (const auto& [label, summary] : runs)
    for (const SeriesSummary& s : summary.series)
      if (!seen[{s.stage, s.series}]) {
        seen[{s.stage, s.series}] = true;
        order.push_back({s.stage, s.series});
      }
  auto find = [](const RunSummary& r, const Key& k) -> const SeriesSummary* {
    for (const SeriesSummary& s : r.series)
      if (s.stage == k.first && s.series == k.second) return &s;
    return nullptr;
  };
  for (const Key& k : order) {
    const SeriesSummary* base = find(runs.front().second, k);
    for (size_t i = 0; i < runs.size(); ++i) {
      const SeriesSummary* s = find(runs[i].second, k);
      if (!s) continue;
      ComparisonRow r;
      r.stage = QString::fromStdString(k.first);
      r.series = QString::fromStdString(k.second);
      r.run = runs[i].first;
      r.stats = s->stats;
      r.last = s->last;
      r.baseline = i == 0;
      r.comparable = base != nullptr && i > 0;
      if (r.comparable) {
        r.difference = s->stats.mean - base->stats.mean;
        // Independent runs: the half-widths add in quadrature (a Welch-style interval
        // for the difference of means, with each side's own t quantile).
        r.differenceCi = std::sqrt(s->stats.ci95 * s->stats.ci95 + base->stats.ci95 * base->stats.ci95);
        r.ratio = base->stats.mean != 0.0 ? s->stats.mean / base->stats.mean : 0.0;
      }
      rows.push_back(r);
    }
  }
  return rows;
}

CompareView::CompareView(QWidget* parent)
    : QWidget(parent), board_(new PlotBoard), table_(new QTableWidget(0, kColumns)), header_(new QLabel) {
  table_->setObjectName(QStringLiteral("compareTable"));
  table_->setHorizontalHeaderLabels({tr("stage"), tr("series"), tr("run"), tr("n"), tr("mean ± std"),
                                     tr("95% CI"), tr("last"), tr("Δ mean vs baseline (95% CI)"),
                                     tr("ratio")});
  table_->verticalHeader()->hide();
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->horizontalHeader()->setStretchLastSection(false);
  header_->setWordWrap(true);
  header_->setText(tr("Select two or more runs in History and press Compare."));
  auto* split = new QSplitter(Qt::Vertical);
  split->addWidget(board_);
  split->addWidget(table_);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 2);
  split->setSizes({600, 320});
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(header_);
  layout->addWidget(split, 1);
}

CompareView::~CompareView() = default;

bool CompareView::setRuns(const QStringList& runDirs, QString* error) {
  std::vector<std::unique_ptr<MetricStore>> stores;
  std::vector<std::pair<QString, RunSummary>> summaries;
  QStringList names;
  for (int i = 0; i < runDirs.size(); ++i) {
    const std::filesystem::path dir = runDirs[i].toStdString();
    try {
      auto store = std::make_unique<MetricStore>();
      store->append(samplesFromEvents(RunStore::readEvents(dir)));
      RunSummary summary = RunStore::loadSummary(dir);
      // Letters keep legends short; the table and header map them to directories.
      const QString label = QString(QChar('A' + i % 26)) + QLatin1Char(':') + QString::fromStdString(summary.name);
      names << QStringLiteral("<b>%1</b> = %2 (%3)").arg(label.toHtmlEscaped(),
                                                        QString::fromStdString(dir.filename().string()).toHtmlEscaped(),
                                                        QString::fromLatin1(toString(summary.status)));
      summaries.emplace_back(label, std::move(summary));
      stores.push_back(std::move(store));
    } catch (const Error& e) {
      if (error) *error = QString::fromStdString(e.what());
      return false;
    }
  }
  board_->clearStores();
  stores_ = std::move(stores);
  for (size_t i = 0; i < stores_.size(); ++i) board_->addStore(stores_[i].get(), summaries[i].first);
  runs_ = runDirs;
  rows_ = compareSummaries(summaries);
  header_->setText(tr("Baseline is A. ") + names.join(QStringLiteral(" · ")));

  table_->setRowCount(0);
  for (const ComparisonRow& r : rows_) {
    const int row = table_->rowCount();
    table_->insertRow(row);
    auto set = [&](int col, const QString& text) {
      auto* item = new QTableWidgetItem(text);
      if (col >= kN) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
      if (r.baseline) {
        QFont f = item->font();
        f.setBold(true);
        item->setFont(f);
      }
      table_->setItem(row, col, item);
    };
    set(kStage, r.stage);
    set(kSeries, r.series);
    set(kRun, r.run);
    set(kN, QString::number(r.stats.n));
    set(kMeanStd, formatMeanStd(r.stats));
    set(kCi, QStringLiteral("± %1").arg(QString::number(r.stats.ci95, 'g', 3)));
    set(kLast, QString::number(r.last, 'g', 6));
    set(kDiff, r.comparable ? QStringLiteral("%1 ± %2").arg(QString::number(r.difference, 'g', 4),
                                                            QString::number(r.differenceCi, 'g', 3))
                            : QString());
    set(kRatio, r.comparable && r.ratio != 0.0 ? QStringLiteral("%1×").arg(QString::number(r.ratio, 'f', 3))
                                               : QString());
  }
  table_->resizeColumnsToContents();
  table_->horizontalHeader()->setSectionResizeMode(kSeries, QHeaderView::Stretch);
  board_->refreshNow();
  return true;
}

}  // namespace wb::ui
