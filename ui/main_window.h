// The workbench's main window (being built out by the desktop issue).
#pragma once

#include <QMainWindow>

namespace wb::ui {

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);
};

}  // namespace wb::ui
