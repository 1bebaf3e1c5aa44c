// One metric family's plot; see live_plot.h.
#include "ui/live_plot.h"

#include <qcustomplot.h>

#include <QMouseEvent>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <map>
#include <span>

#include "core/bench/stats.h"

namespace wb::ui {

QColor seriesColor(int index) {
  static const QColor kPalette[] = {QColor(0, 114, 178),  QColor(213, 94, 0),  QColor(0, 158, 115),
                                    QColor(204, 121, 167), QColor(230, 159, 0), QColor(86, 180, 233),
                                    QColor(120, 120, 120), QColor(240, 228, 66)};
  return kPalette[index % (sizeof kPalette / sizeof kPalette[0])];
}

LivePlot::LivePlot(MetricFamily family, QWidget* parent)
    : QWidget(parent), family_(family), plot_(new QCustomPlot(this)) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(plot_);
  setMinimumHeight(160);

  plot_->plotLayout()->insertRow(0);
  auto* title = new QCPTextElement(plot_, familyTitle(family), QFont(font().family(), 10, QFont::Bold));
  plot_->plotLayout()->addElement(0, 0, title);
  plot_->legend->setVisible(true);
  QFont legendFont = font();
  legendFont.setPointSizeF(std::max(6.0, legendFont.pointSizeF() - 1));
  plot_->legend->setFont(legendFont);
  plot_->legend->setBrush(QColor(255, 255, 255, 200));
  plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  // Stroking a long, noisy polyline with a 2 px pen as one path costs Qt's raster
  // engine hundreds of milliseconds; drawn segment by segment it is ~50x cheaper.
  plot_->setPlottingHint(QCP::phFastPolylines, true);
  plot_->xAxis->setLabel(QStringLiteral("step"));

  readoutItem_ = new QCPItemText(plot_);
  readoutItem_->setPositionAlignment(Qt::AlignTop | Qt::AlignLeft);
  readoutItem_->position->setType(QCPItemPosition::ptAxisRectRatio);
  readoutItem_->position->setCoords(0.01, 0.02);
  readoutItem_->setTextAlignment(Qt::AlignLeft);
  readoutItem_->setBrush(QColor(255, 255, 255, 220));
  readoutItem_->setPadding(QMargins(4, 2, 4, 2));
  readoutItem_->setVisible(false);

  plot_->installEventFilter(this);
  connect(plot_, &QCustomPlot::mouseMove, this, [this](QMouseEvent* e) {
    showReadout(plot_->xAxis->pixelToCoord(e->position().x()));
  });
  connect(plot_, &QCustomPlot::mousePress, this, [this] { autoRange_ = false; });
  connect(plot_, &QCustomPlot::mouseWheel, this, [this] { autoRange_ = false; });
  connect(plot_, &QCustomPlot::mouseDoubleClick, this, [this] {
    autoRange_ = true;
    rescale();
    plot_->replot(QCustomPlot::rpQueuedReplot);
  });
}

bool LivePlot::eventFilter(QObject* watched, QEvent* event) {
  if (watched == plot_ && event->type() == QEvent::Leave && readoutItem_->visible()) {
    readoutItem_->setVisible(false);
    plot_->replot(QCustomPlot::rpQueuedReplot);
  }
  return QWidget::eventFilter(watched, event);
}

void LivePlot::addStore(const MetricStore* store, const QString& prefix) {
  sources_.push_back({store, prefix, 0});
}

void LivePlot::addCurve(const MetricStore* store, int series, const QString& prefix) {
  Curve c;
  c.store = store;
  c.series = series;
  c.label = (prefix.isEmpty() ? QString() : prefix + QStringLiteral(" · ")) +
            store->series()[series].label();
  const QColor color = seriesColor(static_cast<int>(curves_.size()));
  const bool repeats = familyHasRepeats(family_);

  c.bandLow = plot_->addGraph();
  c.bandHigh = plot_->addGraph();
  c.raw = plot_->addGraph();
  c.smooth = plot_->addGraph();
  QColor faint = color;
  faint.setAlpha(70);
  QColor fill = color;
  fill.setAlpha(45);
  c.bandLow->setPen(Qt::NoPen);
  c.bandHigh->setPen(Qt::NoPen);
  c.bandHigh->setBrush(fill);
  c.bandHigh->setChannelFillGraph(c.bandLow);
  c.raw->setPen(QPen(faint, 1));
  if (repeats) {
    c.raw->setLineStyle(QCPGraph::lsNone);
    c.raw->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, faint, 4));
    c.smooth->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, color, 6));
  }
  c.smooth->setPen(QPen(color, 2));
  c.smooth->setName(c.label);
  for (QCPGraph* g : {c.bandLow, c.bandHigh, c.raw, c.smooth}) g->setAdaptiveSampling(true);
  // Antialiased fills and noisy raw lines cost several times more to draw in the
  // raster engine; only the smoothed line, the one people read, stays antialiased.
  for (QCPGraph* g : {c.bandLow, c.bandHigh, c.raw}) {
    g->setAntialiased(false);
    g->setAntialiasedFill(false);
  }
  // Only the smoothed line names the series; raw and band stay out of the legend.
  c.bandLow->removeFromLegend();
  c.bandHigh->removeFromLegend();
  c.raw->removeFromLegend();
  curves_.push_back(c);
}

double LivePlot::keyOf(const SeriesData& d, size_t i) const {
  return options_.xAxis == XAxisMode::Step ? static_cast<double>(d.steps[i]) : d.times[i];
}

void LivePlot::syncSteps(Curve& c) {
  const SeriesData& d = c.store->series()[c.series];
  const size_t n = d.values.size(), from = c.plotted;
  if (n == from) return;
  const std::span<const double> values(d.values);

  QVector<double> keys(static_cast<qsizetype>(n - from));
  for (size_t i = from; i < n; ++i) keys[static_cast<qsizetype>(i - from)] = keyOf(d, i);
  const bool sorted = std::is_sorted(keys.begin(), keys.end()) &&
                      (c.raw->data()->isEmpty() || keys.front() >= (c.raw->data()->constEnd() - 1)->key);
  QVector<double> raw(values.begin() + static_cast<std::ptrdiff_t>(from), values.end());
  c.raw->addData(keys, raw, sorted);
  extend(c, keys, raw);

  // The EMA of a prefix does not change when points are appended: compute it over
  // the whole series (core's function) and add only the new tail.
  const std::vector<double> ema = debiasedEma(values, options_.smoothing);
  c.smooth->addData(keys, QVector<double>(ema.begin() + static_cast<std::ptrdiff_t>(from), ema.end()),
                    sorted);

  // The band is the smoothed curve ± the rolling noise level (std of first differences
  // / sqrt 2, core's rollingNoiseStd): centred where the eye reads the curve, and not
  // inflated by the trend the way a rolling std of a falling loss would be. Its tail
  // needs only the window points before it.
  const int window = std::max(3, options_.bandWindow);
  const size_t start = from > static_cast<size_t>(window) ? from - window : 0;
  const std::vector<double> noise = rollingNoiseStd(values.subspan(start), window);
  QVector<double> low(keys.size()), high(keys.size());
  for (size_t i = from; i < n; ++i) {
    low[static_cast<qsizetype>(i - from)] = ema[i] - noise[i - start];
    high[static_cast<qsizetype>(i - from)] = ema[i] + noise[i - start];
  }
  c.bandLow->addData(keys, low, sorted);
  c.bandHigh->addData(keys, high, sorted);
  extend(c, keys, low);
  extend(c, keys, high);
  c.plotted = n;
}

void LivePlot::syncRepeats(Curve& c) {
  const SeriesData& d = c.store->series()[c.series];
  const size_t n = d.values.size();
  if (n == c.plotted) return;
  // Benchmark points are few: regroup all of them by step on every change.
  std::map<int64_t, std::vector<size_t>> byStep;
  for (size_t i = 0; i < n; ++i) byStep[d.steps[i]].push_back(i);
  QVector<double> rawKeys, rawValues, keys, mean, low, high;
  for (const auto& [step, idx] : byStep) {
    std::vector<double> v;
    double key = 0.0;
    for (size_t i : idx) {
      v.push_back(d.values[i]);
      key += keyOf(d, i);
      rawValues.push_back(d.values[i]);
    }
    key /= static_cast<double>(idx.size());
    for (size_t k = 0; k < idx.size(); ++k) rawKeys.push_back(key);
    const StatsSummary s = summarize(v);
    keys.push_back(key);
    mean.push_back(s.mean);
    low.push_back(s.mean - s.std);
    high.push_back(s.mean + s.std);
  }
  c.raw->setData(rawKeys, rawValues);
  c.smooth->setData(keys, mean);
  c.bandLow->setData(keys, low);
  c.bandHigh->setData(keys, high);
  c.hasBounds = false;
  extend(c, rawKeys, rawValues);
  extend(c, keys, low);
  extend(c, keys, high);
  c.plotted = n;
}

int64_t LivePlot::refresh() {
  for (Source& src : sources_) {
    const auto& all = src.store->series();
    for (; src.seen < all.size(); ++src.seen)
      if (all[src.seen].family == family_) addCurve(src.store, static_cast<int>(src.seen), src.prefix);
  }
  int64_t added = 0;
  for (Curve& c : curves_) {
    const size_t before = c.plotted;
    if (familyHasRepeats(family_)) {
      syncRepeats(c);
    } else {
      syncSteps(c);
    }
    added += static_cast<int64_t>(c.plotted - before);
  }
  if (added > 0 && autoRange_) rescale();
  return added;
}

void LivePlot::rebuild() {
  for (Curve& c : curves_) {
    for (QCPGraph* g : {c.bandLow, c.bandHigh, c.raw, c.smooth}) g->data()->clear();
    c.plotted = 0;
    c.hasBounds = false;
  }
  refresh();
  if (autoRange_) rescale();
}

void LivePlot::setOptions(const PlotOptions& options) {
  const bool data = options.smoothing != options_.smoothing || options.xAxis != options_.xAxis ||
                    options.bandWindow != options_.bandWindow;
  const bool scale = options.logScale != options_.logScale;
  options_ = options;
  plot_->xAxis->setLabel(options_.xAxis == XAxisMode::Step ? QStringLiteral("step")
                                                           : QStringLiteral("time (s)"));
  if (scale) applyScale();
  if (data) {
    rebuild();
  } else if (scale && autoRange_) {
    rescale();
  }
}

void LivePlot::applyScale() {
  if (options_.logScale) {
    plot_->yAxis->setScaleType(QCPAxis::stLogarithmic);
    plot_->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
  } else {
    plot_->yAxis->setScaleType(QCPAxis::stLinear);
    plot_->yAxis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
  }
}

void LivePlot::extend(Curve& c, const QVector<double>& keys, const QVector<double>& values) {
  for (qsizetype i = 0; i < keys.size(); ++i) {
    const double x = keys[i], y = values[i];
    if (!std::isfinite(x) || !std::isfinite(y)) continue;
    if (!c.hasBounds) {
      c.xMin = c.xMax = x;
      c.yMin = c.yMax = y;
      c.yMinPositive = 0;
      c.hasBounds = true;
    }
    c.xMin = std::min(c.xMin, x);
    c.xMax = std::max(c.xMax, x);
    c.yMin = std::min(c.yMin, y);
    c.yMax = std::max(c.yMax, y);
    if (y > 0 && (c.yMinPositive == 0 || y < c.yMinPositive)) c.yMinPositive = y;
  }
}

void LivePlot::rescale() {
  bool any = false;
  double x0 = 0, x1 = 0, y0 = 0, y1 = 0, yPos = 0;
  for (const Curve& c : curves_) {
    if (!c.hasBounds) continue;
    x0 = any ? std::min(x0, c.xMin) : c.xMin;
    x1 = any ? std::max(x1, c.xMax) : c.xMax;
    y0 = any ? std::min(y0, c.yMin) : c.yMin;
    y1 = any ? std::max(y1, c.yMax) : c.yMax;
    if (c.yMinPositive > 0) yPos = yPos > 0 ? std::min(yPos, c.yMinPositive) : c.yMinPositive;
    any = true;
  }
  if (!any) return;
  if (x1 <= x0) x1 = x0 + 1;
  plot_->xAxis->setRange(x0, x1);
  if (options_.logScale) {
    if (yPos <= 0) return;  // nothing positive to show on a log axis
    plot_->yAxis->setRange(yPos / 1.1, std::max(y1, yPos) * 1.1);
  } else {
    const double pad = y1 > y0 ? 0.05 * (y1 - y0) : std::max(1e-9, std::fabs(y0) * 0.05);
    plot_->yAxis->setRange(y0 - pad, y1 + pad);
  }
}

int64_t LivePlot::plottedPoints() const {
  int64_t n = 0;
  for (const Curve& c : curves_) n += static_cast<int64_t>(c.plotted);
  return n;
}

QString LivePlot::readoutAt(double key) const {
  QStringList lines;
  for (const Curve& c : curves_) {
    const auto data = c.smooth->data();
    if (data->isEmpty()) continue;
    auto it = data->findBegin(key, false);
    if (it == data->constEnd()) --it;
    if (it != data->constBegin()) {
      auto prev = it - 1;
      if (std::fabs(prev->key - key) < std::fabs(it->key - key)) it = prev;
    }
    const int index = static_cast<int>(it - data->constBegin());
    QString line = QStringLiteral("%1  %2 = %3").arg(c.label, options_.xAxis == XAxisMode::Step ? "step" : "t")
                       .arg(it->key, 0, 'g', 6);
    if (familyHasRepeats(family_)) {
      const double sd = c.bandHigh->data()->at(index)->value - it->value;
      line += QStringLiteral(": %1 ± %2").arg(it->value, 0, 'g', 5).arg(sd, 0, 'g', 3);
    } else {
      line += QStringLiteral(": %1 (raw %2)").arg(it->value, 0, 'g', 5).arg(c.raw->data()->at(index)->value, 0, 'g', 5);
    }
    lines << line;
  }
  return lines.join('\n');
}

void LivePlot::showReadout(double key) {
  readout_ = readoutAt(key);
  readoutItem_->setText(readout_);
  readoutItem_->setVisible(!readout_.isEmpty());
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

}  // namespace wb::ui
