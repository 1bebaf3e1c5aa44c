// The plots of one view and their replot timer; see plot_board.h.
#include "ui/plot_board.h"

#include <qcustomplot.h>

#include <QCheckBox>
#include <QComboBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QSlider>
#include <QSpinBox>
#include <QTimer>
#include <QVBoxLayout>
#include <algorithm>

namespace wb::ui {

PlotBoard::PlotBoard(QWidget* parent) : QWidget(parent), timer_(new QTimer(this)) {
  auto* controls = new QHBoxLayout;
  controls->addWidget(new QLabel(tr("Smoothing")));
  smoothing_ = new QSlider(Qt::Horizontal);
  smoothing_->setObjectName(QStringLiteral("smoothing"));
  smoothing_->setRange(0, 999);  // EMA weight ×1000, TensorBoard's range
  smoothing_->setValue(static_cast<int>(options_.smoothing * 1000));
  smoothing_->setMaximumWidth(220);
  smoothing_->setToolTip(tr("Debiased exponential moving average (display only; the raw "
                            "samples and all statistics are unchanged)"));
  controls->addWidget(smoothing_);
  smoothingValue_ = new QLabel;
  smoothingValue_->setMinimumWidth(40);
  controls->addWidget(smoothingValue_);
  controls->addSpacing(12);
  controls->addWidget(new QLabel(tr("x axis")));
  xAxis_ = new QComboBox;
  xAxis_->addItems({tr("Step"), tr("Wall time")});
  controls->addWidget(xAxis_);
  logScale_ = new QCheckBox(tr("Log scale"));
  controls->addWidget(logScale_);
  controls->addSpacing(12);
  controls->addWidget(new QLabel(tr("σ window")));
  window_ = new QSpinBox;
  window_->setRange(2, 100000);
  window_->setValue(options_.bandWindow);
  window_->setToolTip(tr("Points in the rolling window of the ±1σ band (step series); "
                         "benchmark points use the spread across repeats"));
  controls->addWidget(window_);
  controls->addStretch(1);

  gridHost_ = new QWidget;
  grid_ = new QGridLayout(gridHost_);
  grid_->setContentsMargins(0, 0, 0, 0);
  empty_ = new QLabel(tr("No samples yet."));
  empty_->setAlignment(Qt::AlignCenter);
  grid_->addWidget(empty_, 0, 0);

  auto* layout = new QVBoxLayout(this);
  layout->addLayout(controls);
  layout->addWidget(gridHost_, 1);

  connect(smoothing_, &QSlider::valueChanged, this, &PlotBoard::controlsChanged);
  connect(xAxis_, &QComboBox::currentIndexChanged, this, &PlotBoard::controlsChanged);
  connect(logScale_, &QCheckBox::toggled, this, &PlotBoard::controlsChanged);
  connect(window_, &QSpinBox::valueChanged, this, &PlotBoard::controlsChanged);
  smoothingValue_->setText(QString::number(options_.smoothing, 'f', 3));

  timer_->setInterval(1000 / kMaxReplotHz);
  connect(timer_, &QTimer::timeout, this, &PlotBoard::tick);
}

void PlotBoard::addStore(const MetricStore* store, const QString& prefix) {
  sources_.push_back({store, prefix});
  for (LivePlot* p : plots_)
    if (p) p->addStore(store, prefix);
  connect(store, &MetricStore::appended, this, &PlotBoard::markDirty);
  connect(store, &MetricStore::cleared, this, [this] {
    // A cleared store invalidates what the plots hold: start over with the same stores.
    auto keep = sources_;
    clearStores();
    for (const auto& s : keep) addStore(s.store, s.prefix);
  });
  markDirty();
}

void PlotBoard::clearStores() {
  for (const auto& s : sources_) disconnect(s.store, nullptr, this, nullptr);
  sources_.clear();
  for (LivePlot*& p : plots_) {
    delete p;
    p = nullptr;
  }
  needsReplot_.fill(false);
  relayout();
}

void PlotBoard::setOptions(const PlotOptions& options) {
  // Moving the controls calls controlsChanged, which applies the options.
  QSignalBlocker a(smoothing_), b(xAxis_), c(logScale_), d(window_);
  smoothing_->setValue(static_cast<int>(std::lround(options.smoothing * 1000)));
  xAxis_->setCurrentIndex(options.xAxis == XAxisMode::Step ? 0 : 1);
  logScale_->setChecked(options.logScale);
  window_->setValue(options.bandWindow);
  options_ = options;
  smoothingValue_->setText(QString::number(options_.smoothing, 'f', 3));
  for (LivePlot* p : plots_)
    if (p) p->setOptions(options_);
  markDirty();
}

void PlotBoard::controlsChanged() {
  PlotOptions o;
  o.smoothing = smoothing_->value() / 1000.0;
  o.xAxis = xAxis_->currentIndex() == 0 ? XAxisMode::Step : XAxisMode::WallTime;
  o.logScale = logScale_->isChecked();
  o.bandWindow = window_->value();
  options_ = o;
  smoothingValue_->setText(QString::number(o.smoothing, 'f', 3));
  for (LivePlot* p : plots_)
    if (p) {
      p->setOptions(o);
      p->plot()->replot(QCustomPlot::rpQueuedReplot);
    }
}

std::vector<LivePlot*> PlotBoard::plots() const {
  std::vector<LivePlot*> out;
  for (LivePlot* p : plots_)
    if (p) out.push_back(p);
  return out;
}

void PlotBoard::markDirty() {
  dirty_ = true;
  if (!timer_->isActive()) timer_->start();
}

void PlotBoard::ensurePlots() {
  std::array<bool, kFamilyCount> present{};
  for (const auto& s : sources_)
    for (const SeriesData& d : s.store->series()) present[static_cast<int>(d.family)] = true;
  bool added = false;
  for (int f = 0; f < kFamilyCount; ++f) {
    if (!present[f] || plots_[f]) continue;
    auto* p = new LivePlot(static_cast<MetricFamily>(f), gridHost_);
    p->setOptions(options_);
    for (const auto& s : sources_) p->addStore(s.store, s.prefix);
    plots_[f] = p;
    added = true;
  }
  if (added) relayout();
}

void PlotBoard::relayout() {
  grid_->removeWidget(empty_);
  int k = 0;
  for (LivePlot* p : plots_) {
    if (!p) continue;
    grid_->removeWidget(p);
    grid_->addWidget(p, k / 2, k % 2);
    ++k;
  }
  empty_->setVisible(k == 0);
  if (k == 0) grid_->addWidget(empty_, 0, 0);
}

void PlotBoard::tick() {
  if (dirty_) {
    dirty_ = false;
    ensurePlots();
    for (int f = 0; f < kFamilyCount; ++f) {
      if (!plots_[f]) continue;
      const int64_t added = plots_[f]->refresh();
      pointsPlotted_ += added;
      if (added > 0) needsReplot_[f] = true;
    }
  }
  double budget = kReplotBudgetMs;
  int queued = 0;
  const int first = nextReplot_;
  for (int k = 0; k < kFamilyCount; ++k) {
    const int f = (first + k) % kFamilyCount;
    if (!needsReplot_[f] || !plots_[f]) continue;
    const double estimate = plots_[f]->plot()->replotTime(true);
    if (queued > 0 && estimate > budget) break;
    plots_[f]->plot()->replot(QCustomPlot::rpQueuedReplot);
    needsReplot_[f] = false;
    budget -= estimate;
    ++queued;
    nextReplot_ = (f + 1) % kFamilyCount;
  }
  if (queued > 0) ++replots_;
  const bool pending = std::any_of(needsReplot_.begin(), needsReplot_.end(), [](bool b) { return b; });
  if (!dirty_ && !pending) timer_->stop();  // idle: no wake-ups until new data arrives
}

void PlotBoard::refreshNow() {
  ensurePlots();
  for (LivePlot* p : plots_) {
    if (!p) continue;
    pointsPlotted_ += p->refresh();
    p->plot()->replot(QCustomPlot::rpImmediateRefresh);
  }
  dirty_ = false;
  needsReplot_.fill(false);
}

}  // namespace wb::ui
