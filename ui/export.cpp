// CSV, PNG and Markdown exports; see export.h.
#include "ui/export.h"

#include <qcustomplot.h>

#include <QBuffer>
#include <QDir>
#include <QFileInfo>
#include <QSaveFile>
#include <QSysInfo>
#include <QThread>

#include "core/errors.h"
#include "ui/live_plot.h"
#include "ui/metric_store.h"
#include "ui/plot_board.h"

namespace wb::ui {
namespace {

QString csvField(const QString& s) {
  if (!s.contains(QLatin1Char(',')) && !s.contains(QLatin1Char('"')) && !s.contains(QLatin1Char('\n')))
    return s;
  QString out = s;
  out.replace(QStringLiteral("\""), QStringLiteral("\"\""));
  return QLatin1Char('"') + out + QLatin1Char('"');
}

QString csvField(const std::string& s) { return csvField(QString::fromStdString(s)); }

// Shortest text that reads back as the same double (what events.jsonl holds).
QString exact(double v) { return QString::number(v, 'g', 17); }

QString mdCell(const QString& s) {
  QString out = s;
  return out.replace(QLatin1Char('|'), QStringLiteral("\\|"));
}

QString num(double v) { return QString::number(v, 'g', 6); }

}  // namespace

void writeFileAtomic(const QString& path, const QByteArray& bytes) {
  QSaveFile file(path);
  if (!file.open(QIODevice::WriteOnly))
    throw RunError(path.toStdString(), "cannot write: " + file.errorString().toStdString(),
                   "choose a writable folder");
  file.write(bytes);
  if (!file.commit())
    throw RunError(path.toStdString(), "cannot write: " + file.errorString().toStdString());
}

void writeSamplesCsv(const MetricStore& store, const QString& path) {
  QByteArray out = "stage,series,step,t_s,value\n";
  const int64_t n = store.totalPoints();
  out.reserve(static_cast<qsizetype>(n * 48));
  for (int64_t i = 0; i < n; ++i) {
    const MetricSample s = store.sampleAt(i);
    out += (csvField(s.stage) + ',' + csvField(s.series) + ',' + QString::number(s.step) + ',' +
            exact(s.tSeconds) + ',' + exact(s.value) + '\n')
               .toUtf8();
  }
  writeFileAtomic(path, out);
}

void writeSummaryCsv(const RunSummary& summary, const QString& path) {
  QByteArray out = "stage,series,n,mean,std,min,max,p50,p95,ci95,last,last_step\n";
  for (const SeriesSummary& s : summary.series) {
    const StatsSummary& st = s.stats;
    out += (csvField(s.stage) + ',' + csvField(s.series) + ',' + QString::number(st.n) + ',' +
            exact(st.mean) + ',' + exact(st.std) + ',' + exact(st.min) + ',' + exact(st.max) +
            ',' + exact(st.p50) + ',' + exact(st.p95) + ',' + exact(st.ci95) + ',' +
            exact(s.last) + ',' + QString::number(s.lastStep) + '\n')
               .toUtf8();
  }
  writeFileAtomic(path, out);
}

void writePlotPng(QCustomPlot* plot, const QString& path, QSize size) {
  // savePng() would write the file in place; rendering the same pixmap ourselves
  // lets the write go through QSaveFile.
  const QPixmap pixmap = plot->toPixmap(size.width(), size.height());
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  if (pixmap.isNull() || !pixmap.save(&buffer, "PNG"))
    throw RunError(path.toStdString(), "cannot render the plot as PNG");
  writeFileAtomic(path, bytes);
}

QStringList writeBoardPngs(PlotBoard& board, const QString& dir, QSize size) {
  board.refreshNow();
  QDir().mkpath(dir);
  QStringList files;
  for (LivePlot* p : board.plots()) {
    const QString name = familyKey(p->family()) + QStringLiteral(".png");
    writePlotPng(p->plot(), QDir(dir).filePath(name), size);
    files << name;
  }
  return files;
}

QString formatMeanStd(const StatsSummary& s) {
  return QStringLiteral("%1 ± %2").arg(QString::number(s.mean, 'g', 6), QString::number(s.std, 'g', 3));
}

std::vector<std::pair<QString, QString>> runEnvironment(const std::filesystem::path& runDir) {
  std::vector<std::pair<QString, QString>> env;
  try {
    for (const RunEvent& e : RunStore::readEvents(runDir)) {
      if (e.kind != "run_start") continue;
      env.emplace_back(QStringLiteral("started (UTC)"), QString::fromStdString(e.data.value("started_utc", "")));
      env.emplace_back(QStringLiteral("host"), QString::fromStdString(e.data.value("host", "")));
      env.emplace_back(QStringLiteral("pid"), QString::number(e.data.value("pid", int64_t{0})));
      break;
    }
  } catch (const Error&) {
    // A run directory without events: the report says only what this program knows.
  }
  env.emplace_back(QStringLiteral("run directory"), QString::fromStdString(runDir.string()));
  env.emplace_back(QStringLiteral("OS"), QSysInfo::prettyProductName());
  env.emplace_back(QStringLiteral("CPU"), QSysInfo::currentCpuArchitecture() + QStringLiteral(", ") +
                                               QString::number(QThread::idealThreadCount()) +
                                               QStringLiteral(" threads"));
  env.emplace_back(QStringLiteral("Qt"), QString::fromLatin1(qVersion()));
  return env;
}

QString markdownReport(const ReportInput& in) {
  const RunSummary& s = in.summary;
  QString md;
  md += QStringLiteral("# %1\n\n").arg(in.title.isEmpty() ? QString::fromStdString(s.name) : in.title);
  md += QStringLiteral("Status: **%1**").arg(QString::fromLatin1(toString(s.status)));
  if (!s.message.empty()) md += QStringLiteral(" — %1").arg(QString::fromStdString(s.message));
  md += QStringLiteral("  \nDuration: %1 s\n\n").arg(QString::number(s.durationSeconds, 'f', 1));

  md += QStringLiteral("## Environment\n\n| key | value |\n|---|---|\n");
  for (const auto& [k, v] : in.environment) md += QStringLiteral("| %1 | %2 |\n").arg(mdCell(k), mdCell(v));

  md += QStringLiteral("\n## Results\n\nmean ± sample std over all samples of a series; "
                       "95% CI is the half-width of the mean's Student-t interval.\n\n");
  md += QStringLiteral("| stage | series | n | mean ± std | 95% CI | min | max | last |\n"
                       "|---|---|--:|--:|--:|--:|--:|--:|\n");
  for (const SeriesSummary& r : s.series) {
    md += QStringLiteral("| %1 | %2 | %3 | %4 | ± %5 | %6 | %7 | %8 |\n")
              .arg(mdCell(QString::fromStdString(r.stage)), mdCell(QString::fromStdString(r.series)))
              .arg(r.stats.n)
              .arg(formatMeanStd(r.stats), QString::number(r.stats.ci95, 'g', 3), num(r.stats.min),
                   num(r.stats.max), num(r.last));
  }
  if (!in.plotFiles.isEmpty()) {
    md += QStringLiteral("\n## Plots\n\n");
    for (const QString& f : in.plotFiles)
      md += QStringLiteral("![%1](%2)\n\n").arg(QFileInfo(f).completeBaseName(), f);
  }
  if (!in.profile.is_null()) {
    md += QStringLiteral("## Profile\n\n```json\n%1\n```\n").arg(QString::fromStdString(in.profile.dump(2)));
  }
  return md;
}

void writeMarkdownReport(ReportInput input, const QString& path, PlotBoard& board, QSize size) {
  const QDir dir = QFileInfo(path).absoluteDir();
  input.plotFiles.clear();
  for (const QString& f : writeBoardPngs(board, dir.filePath(QStringLiteral("plots")), size))
    input.plotFiles << QStringLiteral("plots/") + f;
  writeFileAtomic(path, markdownReport(input).toUtf8());
}

}  // namespace wb::ui
