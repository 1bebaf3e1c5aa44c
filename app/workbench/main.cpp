// gpt2-workbench: the desktop app.
#include <QApplication>

#include "ui/main_window.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setApplicationName("gpt2-workbench");
  QApplication::setOrganizationName("gpt2-workbench");
  wb::ui::MainWindow window;
  window.show();
  return QApplication::exec();
}
