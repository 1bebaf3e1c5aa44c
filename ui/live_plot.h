// One QCustomPlot for one metric family (loss, time per batch, ...), fed from one or
// more MetricStores (several in the compare view). Per series: the raw samples
// faint, TensorBoard's debiased EMA (display only), and a ±1σ band drawn as two
// graphs joined by setChannelFillGraph — for step series the EMA ± a rolling noise
// level that ignores the trend (core's rollingNoiseStd), for benchmark points the
// mean ± the spread across repeats. The numbers come from core's stats;
// this class only draws them. It never replots by itself: PlotBoard's timer does.
#pragma once

#include <QColor>
#include <QString>
#include <QWidget>
#include <cstdint>
#include <vector>

#include "ui/metric_store.h"

class QCustomPlot;
class QCPGraph;
class QCPItemText;

namespace wb::ui {

enum class XAxisMode { Step, WallTime };

struct PlotOptions {
  double smoothing = 0.6;  // EMA weight in [0, 1)
  XAxisMode xAxis = XAxisMode::Step;
  bool logScale = false;
  int bandWindow = 25;  // rolling noise-σ window (points) for step series
};

class LivePlot : public QWidget {
  Q_OBJECT
 public:
  struct Curve {
    const MetricStore* store = nullptr;
    int series = -1;
    QString label;
    QCPGraph* raw = nullptr;
    QCPGraph* smooth = nullptr;
    QCPGraph* bandLow = nullptr;
    QCPGraph* bandHigh = nullptr;  // filled down to bandLow
    size_t plotted = 0;            // store points already in the graphs
    // Data bounds kept as points arrive: rescaling by scanning a million points
    // per graph every frame would cost more than drawing them.
    double xMin = 0, xMax = 0, yMin = 0, yMax = 0;
    double yMinPositive = 0;  // for the log scale; 0 while no positive value was seen
    bool hasBounds = false;
  };

  explicit LivePlot(MetricFamily family, QWidget* parent = nullptr);

  // `prefix` names the run in labels (compare view); empty for a single run.
  void addStore(const MetricStore* store, const QString& prefix = {});
  void setOptions(const PlotOptions& options);
  // Brings the graphs up to date with the stores (new series, new points). Returns
  // the number of raw points added; the caller decides when to replot.
  int64_t refresh();

  MetricFamily family() const { return family_; }
  QCustomPlot* plot() const { return plot_; }
  const std::vector<Curve>& curves() const { return curves_; }
  int64_t plottedPoints() const;
  // The hover read-out at x = `key` (what moving the mouse there shows).
  QString readoutAt(double key) const;
  QString readout() const { return readout_; }

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  void addCurve(const MetricStore* store, int series, const QString& prefix);
  void syncSteps(Curve& c);
  void syncRepeats(Curve& c);
  void rebuild();
  void applyScale();
  void rescale();
  static void extend(Curve& c, const QVector<double>& keys, const QVector<double>& values);
  void showReadout(double key);
  double keyOf(const SeriesData& d, size_t i) const;

  MetricFamily family_;
  QCustomPlot* plot_;
  QCPItemText* readoutItem_;
  PlotOptions options_;
  struct Source {
    const MetricStore* store;
    QString prefix;
    size_t seen = 0;  // series of the store already looked at
  };
  std::vector<Source> sources_;
  std::vector<Curve> curves_;
  bool autoRange_ = true;  // off once the user drags or zooms; double-click restores it
  QString readout_;
};

// A fixed, colour-blind-friendly palette (Okabe-Ito), cycled by curve index.
QColor seriesColor(int index);

}  // namespace wb::ui
