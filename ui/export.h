// Writing what the GUI shows to files: raw samples and the summary table as CSV,
// plots as PNG (default 1920×1200), and a Markdown report with llama-bench-style
// `mean ± std` tables linking the PNGs. Every file goes through QSaveFile (temp +
// rename), so a crash leaves the old file or none. No statistics are computed
// here: the summary comes from core (RunStore::loadSummary).
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>
#include <filesystem>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/bench/stats.h"
#include "core/run/run_store.h"

class QCustomPlot;

namespace wb::ui {

class MetricStore;
class PlotBoard;

inline constexpr QSize kDefaultExportSize{1920, 1200};

// Atomic write; throws wb::RunError naming the file when it cannot be written.
void writeFileAtomic(const QString& path, const QByteArray& bytes);

// stage,series,step,t_s,value — one row per sample in arrival order, full precision.
void writeSamplesCsv(const MetricStore& store, const QString& path);
// stage,series,n,mean,std,min,max,p50,p95,ci95,last,last_step
void writeSummaryCsv(const RunSummary& summary, const QString& path);
// The plot as it is now, rendered at `size` (what QCustomPlot::savePng renders,
// but into a QSaveFile).
void writePlotPng(QCustomPlot* plot, const QString& path, QSize size = kDefaultExportSize);
// One PNG per plot of the board, `<dir>/<family>.png`; returns the file names.
QStringList writeBoardPngs(PlotBoard& board, const QString& dir, QSize size = kDefaultExportSize);

// "3.142 ± 0.0123" (mean to 6 significant digits, std to 3).
QString formatMeanStd(const StatsSummary& stats);

struct ReportInput {
  QString title;
  nlohmann::json profile;  // profile.json as run (null: left out)
  RunSummary summary;
  std::vector<std::pair<QString, QString>> environment;
  QStringList plotFiles;  // relative to the report
};

// Where the run ran: host, pid, start time (events.jsonl), plus this program's Qt and OS.
std::vector<std::pair<QString, QString>> runEnvironment(const std::filesystem::path& runDir);
QString markdownReport(const ReportInput& input);
// report at `path`, the board's PNGs in `plots/` beside it, linked from the report.
void writeMarkdownReport(ReportInput input, const QString& path, PlotBoard& board,
                         QSize size = kDefaultExportSize);

}  // namespace wb::ui
