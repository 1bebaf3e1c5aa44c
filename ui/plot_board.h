// The grid of LivePlots for one view (the live run, an opened run, a comparison):
// one plot per metric family that has data, shared display controls (EMA
// smoothing, x by step or wall time, log scale, σ window) and the GUI timer that
// replots at most 30 times a second, and only when data or options changed.
#pragma once

#include <QWidget>
#include <array>
#include <cstdint>
#include <vector>

#include "ui/live_plot.h"
#include "ui/metric_store.h"

class QGridLayout;
class QLabel;
class QTimer;
class QSlider;
class QComboBox;
class QCheckBox;
class QSpinBox;

namespace wb::ui {

class PlotBoard : public QWidget {
  Q_OBJECT
 public:
  static constexpr int kMaxReplotHz = 30;
  // Replots queued in one tick run back to back in the next event-loop pass; their
  // estimated cost (each plot's last replot time) is kept under this budget so
  // input and other timers get their turn. Plots left over are drawn next tick.
  static constexpr double kReplotBudgetMs = 12.0;

  explicit PlotBoard(QWidget* parent = nullptr);

  void addStore(const MetricStore* store, const QString& prefix = {});
  void clearStores();  // drops every plot too
  PlotOptions options() const { return options_; }
  void setOptions(const PlotOptions& options);

  // Plots that exist (families with data), in family order.
  std::vector<LivePlot*> plots() const;
  LivePlot* plotFor(MetricFamily family) const { return plots_[static_cast<int>(family)]; }
  // Synchronous refresh and replot, for exports and tests.
  void refreshNow();

  // Counters for the perf numbers: timer ticks that replotted, points handed to graphs.
  int64_t replots() const { return replots_; }
  int64_t pointsPlotted() const { return pointsPlotted_; }

  QSlider* smoothingSlider() const { return smoothing_; }
  QComboBox* xAxisBox() const { return xAxis_; }
  QCheckBox* logScaleBox() const { return logScale_; }

 private:
  void markDirty();
  void tick();
  void ensurePlots();
  void relayout();
  void controlsChanged();

  struct Source {
    const MetricStore* store;
    QString prefix;
  };
  std::vector<Source> sources_;
  std::array<LivePlot*, kFamilyCount> plots_{};
  PlotOptions options_;
  QTimer* timer_;
  QGridLayout* grid_;
  QWidget* gridHost_;
  QLabel* empty_;
  QSlider* smoothing_;
  QLabel* smoothingValue_;
  QComboBox* xAxis_;
  QCheckBox* logScale_;
  QSpinBox* window_;
  bool dirty_ = false;
  std::array<bool, kFamilyCount> needsReplot_{};
  int nextReplot_ = 0;  // round robin, so a slow plot cannot starve the others
  int64_t replots_ = 0;
  int64_t pointsPlotted_ = 0;
};

}  // namespace wb::ui
