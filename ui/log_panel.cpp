// The log view; see log_panel.h.
#include "ui/log_panel.h"

#include <QFontDatabase>

namespace wb::ui {

LogPanel::LogPanel(QWidget* parent) : QPlainTextEdit(parent) {
  setObjectName(QStringLiteral("log"));
  setReadOnly(true);
  setMaximumBlockCount(kMaxLines);
  setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  setLineWrapMode(QPlainTextEdit::NoWrap);
}

static QString colorOf(LogLevel level) {
  switch (level) {
    case LogLevel::Warning: return QStringLiteral("#b36b00");
    case LogLevel::Error: return QStringLiteral("#c00000");
    case LogLevel::Info: break;
  }
  return {};
}

void LogPanel::appendLine(const LogLine& line) {
  const QString prefix = QStringLiteral("%1s  [%2] ")
                             .arg(line.tSeconds, 8, 'f', 2)
                             .arg(QString::fromStdString(line.stage));
  const QString text = (prefix + QString::fromStdString(line.text)).toHtmlEscaped();
  const QString color = colorOf(line.level);
  appendHtml(color.isEmpty() ? text : QStringLiteral("<span style=\"color:%1\">%2</span>").arg(color, text));
}

void LogPanel::appendNote(const QString& text, LogLevel level) {
  const QString color = colorOf(level);
  const QString body = QStringLiteral("— ") + text.toHtmlEscaped();
  appendHtml(color.isEmpty() ? QStringLiteral("<i>%1</i>").arg(body)
                             : QStringLiteral("<i style=\"color:%1\">%2</i>").arg(color, body));
}

}  // namespace wb::ui
