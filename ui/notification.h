// A non-modal notice in the corner of the main window ("run finished", "run
// failed"): it never takes focus or blocks input, and fades out on its own or on
// a click. Not a system tray notification (absent on many desktops and offscreen).
#pragma once

#include <QFrame>

class QLabel;
class QTimer;

namespace wb::ui {

class Notification : public QFrame {
  Q_OBJECT
 public:
  explicit Notification(QWidget* parent);
  void showMessage(const QString& title, const QString& text, bool error, int msec = 8000);
  QString text() const;

 protected:
  void mousePressEvent(QMouseEvent* event) override;
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  void place();
  QLabel* label_;
  QTimer* timer_;
};

}  // namespace wb::ui
