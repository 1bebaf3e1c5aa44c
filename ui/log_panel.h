// The run's log lines (from core's LogLine events) in a read-only view, coloured by
// level and capped so a chatty stage cannot grow the widget without bound. It does
// not filter or store anything: events.jsonl is the record.
#pragma once

#include <QPlainTextEdit>

#include "core/run/events.h"

namespace wb::ui {

class LogPanel : public QPlainTextEdit {
  Q_OBJECT
 public:
  static constexpr int kMaxLines = 20000;
  explicit LogPanel(QWidget* parent = nullptr);
  void appendLine(const LogLine& line);
  // A message from the app itself (run started, export written, ...).
  void appendNote(const QString& text, LogLevel level = LogLevel::Info);
};

}  // namespace wb::ui
