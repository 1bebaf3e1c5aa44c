// The corner notice; see notification.h.
#include "ui/notification.h"

#include <QEvent>
#include <QHBoxLayout>
#include <QLabel>
#include <QTimer>

namespace wb::ui {

Notification::Notification(QWidget* parent) : QFrame(parent), label_(new QLabel), timer_(new QTimer(this)) {
  setObjectName(QStringLiteral("notification"));
  setFrameShape(QFrame::StyledPanel);
  setAttribute(Qt::WA_ShowWithoutActivating);
  setFocusPolicy(Qt::NoFocus);
  label_->setWordWrap(true);
  label_->setTextFormat(Qt::RichText);
  auto* layout = new QHBoxLayout(this);
  layout->addWidget(label_);
  setMaximumWidth(420);
  timer_->setSingleShot(true);
  connect(timer_, &QTimer::timeout, this, &QWidget::hide);
  parent->installEventFilter(this);
  hide();
}

void Notification::showMessage(const QString& title, const QString& text, bool error, int msec) {
  setStyleSheet(error ? QStringLiteral("#notification{background:#fde8e8;border:1px solid #c00000;}")
                      : QStringLiteral("#notification{background:#e8f4ea;border:1px solid #2e7d32;}"));
  label_->setText(QStringLiteral("<b>%1</b><br>%2").arg(title.toHtmlEscaped(), text.toHtmlEscaped()));
  adjustSize();
  place();
  show();
  raise();
  timer_->start(msec);
}

QString Notification::text() const { return label_->text(); }

void Notification::mousePressEvent(QMouseEvent*) { hide(); }

bool Notification::eventFilter(QObject* watched, QEvent* event) {
  if (watched == parentWidget() && event->type() == QEvent::Resize && isVisible()) place();
  return QFrame::eventFilter(watched, event);
}

void Notification::place() {
  const QWidget* p = parentWidget();
  const int margin = 16;
  move(p->width() - width() - margin, p->height() - height() - margin - 24);
}

}  // namespace wb::ui
