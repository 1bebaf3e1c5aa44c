// The workbench's main window.
#include "ui/main_window.h"

namespace wb::ui {

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) { setWindowTitle("GPT-2 Workbench"); }

}  // namespace wb::ui
