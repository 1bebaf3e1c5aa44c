// A generated form row; see field_editor.h.
#include "ui/field_editor.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QToolButton>
#include <QVBoxLayout>

namespace wb::ui {

using nlohmann::json;

FieldEditor::FieldEditor(FieldSpec spec, QString pointer, QWidget* parent)
    : QWidget(parent), spec_(std::move(spec)), pointer_(std::move(pointer)) {
  setObjectName(pointer_);
  auto* row = new QHBoxLayout;
  row->setContentsMargins(0, 0, 0, 0);
  QWidget* in = nullptr;
  if (spec_.kind == FieldKind::Bool) {
    check_ = new QCheckBox;
    connect(check_, &QCheckBox::toggled, this, [this](bool on) {
      if (updating_) return;
      present_ = true;
      Q_EMIT edited(pointer_, json(on));
    });
    in = check_;
  } else if (spec_.kind == FieldKind::String && !spec_.choices.empty()) {
    combo_ = new QComboBox;
    for (const auto& c : spec_.choices) combo_->addItem(QString::fromStdString(c));
    connect(combo_, &QComboBox::currentIndexChanged, this, [this] {
      if (updating_) return;
      present_ = true;
      Q_EMIT edited(pointer_, json(combo_->currentText().toStdString()));
    });
    in = combo_;
  } else {
    line_ = new QLineEdit;
    connect(line_, &QLineEdit::editingFinished, this, &FieldEditor::commitLine);
    in = line_;
  }
  in->setObjectName(pointer_ + QStringLiteral("#input"));
  QString tip = QString::fromStdString(spec_.help);
  tip += QStringLiteral("\nExpected: ") + QString::fromStdString(describeExpected(spec_));
  in->setToolTip(tip);
  row->addWidget(in, 1);
  reset_ = new QToolButton;
  reset_->setText(QStringLiteral("↺"));
  reset_->setToolTip(tr("Reset to the default (removes the key from the profile)"));
  reset_->setAutoRaise(true);
  connect(reset_, &QToolButton::clicked, this, [this] { Q_EMIT resetRequested(pointer_); });
  row->addWidget(reset_);

  errorLabel_ = new QLabel;
  errorLabel_->setObjectName(pointer_ + QStringLiteral("#error"));
  errorLabel_->setStyleSheet(QStringLiteral("color:#c00000;"));
  errorLabel_->setWordWrap(true);
  errorLabel_->hide();
  auto* col = new QVBoxLayout(this);
  col->setContentsMargins(0, 0, 0, 0);
  col->setSpacing(1);
  col->addLayout(row);
  col->addWidget(errorLabel_);
}

QWidget* FieldEditor::input() const {
  if (check_) return check_;
  if (combo_) return combo_;
  return line_;
}

QString FieldEditor::displayText(const FieldSpec& spec, const json& v) {
  if (v.is_null()) return {};
  if (v.is_string()) return QString::fromStdString(v.get<std::string>());
  const bool list = spec.kind == FieldKind::IntList || spec.kind == FieldKind::NumberList ||
                    spec.kind == FieldKind::StringList;
  if (list && v.is_array()) {
    QStringList parts;
    for (const auto& e : v) parts << (e.is_string() ? QString::fromStdString(e.get<std::string>())
                                                    : QString::fromStdString(e.dump()));
    return parts.join(QStringLiteral(", "));
  }
  return QString::fromStdString(v.dump());
}

json FieldEditor::parseText(const FieldSpec& spec, const QString& textIn) {
  const QString text = textIn.trimmed();
  auto scalar = [](const QString& s) {
    json j = json::parse(s.toStdString(), nullptr, false);
    return j.is_discarded() ? json(s.toStdString()) : j;
  };
  switch (spec.kind) {
    case FieldKind::String: return json(textIn.toStdString());
    case FieldKind::Int:
    case FieldKind::Number:
    case FieldKind::Bool:
    case FieldKind::Object:
    case FieldKind::ObjectList: return scalar(text);
    case FieldKind::IntList:
    case FieldKind::NumberList:
    case FieldKind::StringList: {
      if (text.startsWith(QLatin1Char('['))) return scalar(text);
      json out = json::array();
      if (text.isEmpty()) return out;
      for (const QString& part : text.split(QLatin1Char(','))) {
        const QString p = part.trimmed();
        out.push_back(spec.kind == FieldKind::StringList ? json(p.toStdString()) : scalar(p));
      }
      return out;
    }
  }
  return json(textIn.toStdString());
}

void FieldEditor::setValue(const json& value, bool present, const json& fallback) {
  updating_ = true;
  present_ = present;
  const json& shown = present ? value : fallback;
  if (check_) {
    check_->setChecked(shown.is_boolean() && shown.get<bool>());
  } else if (combo_) {
    const QString text = displayText(spec_, shown);
    int i = combo_->findText(text);
    if (i < 0 && !text.isEmpty()) {
      // A value outside the choices (from the JSON view): show it so the error makes sense.
      combo_->addItem(text);
      i = combo_->count() - 1;
    }
    combo_->setCurrentIndex(i);
  } else {
    line_->setText(present ? displayText(spec_, value) : QString());
    line_->setPlaceholderText(displayText(spec_, fallback));
  }
  QFont f = input()->font();
  f.setItalic(!present);
  input()->setFont(f);
  reset_->setEnabled(present);
  updating_ = false;
}

json FieldEditor::value() const {
  if (check_) return check_->isChecked();
  if (combo_) return combo_->currentText().toStdString();
  return parseText(spec_, line_->text());
}

void FieldEditor::commitLine() {
  // editingFinished also fires on focus loss: only a changed text is an edit.
  if (updating_ || !line_->isModified()) return;
  line_->setModified(false);
  if (line_->text().isEmpty() && spec_.kind != FieldKind::String) {
    // An emptied field means "use the default".
    if (present_) Q_EMIT resetRequested(pointer_);
    return;
  }
  present_ = true;
  Q_EMIT edited(pointer_, value());
}

void FieldEditor::setError(const QString& message) {
  error_ = message;
  errorLabel_->setText(message);
  errorLabel_->show();
  input()->setStyleSheet(QStringLiteral("border:2px solid #c00000; background:#fff0f0;"));
  input()->setToolTip(message);
}

void FieldEditor::clearError() {
  if (error_.isEmpty()) return;
  error_.clear();
  errorLabel_->hide();
  input()->setStyleSheet({});
  input()->setToolTip(QString::fromStdString(spec_.help) + QStringLiteral("\nExpected: ") +
                      QString::fromStdString(describeExpected(spec_)));
}

}  // namespace wb::ui
