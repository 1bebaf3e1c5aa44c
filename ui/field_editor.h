// One form row generated from a FieldSpec: the input widget that suits its kind
// (check box, choice box, or a line edit that reads numbers, lists and objects),
// a reset-to-default button, and an error line for validation messages. It edits
// a JSON value; it does not validate (core's validateSection does, via the editor).
#pragma once

#include <QString>
#include <QWidget>

#include <nlohmann/json.hpp>

#include "core/run/schema.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QToolButton;

namespace wb::ui {

class FieldEditor : public QWidget {
  Q_OBJECT
 public:
  FieldEditor(FieldSpec spec, QString pointer, QWidget* parent = nullptr);

  const FieldSpec& spec() const { return spec_; }
  const QString& pointer() const { return pointer_; }
  // `present`: the key is in the document. Absent keys show `fallback` (the default
  // or the validated value) greyed, and stay absent until edited.
  void setValue(const nlohmann::json& value, bool present, const nlohmann::json& fallback);
  nlohmann::json value() const;  // what the input holds now, as JSON
  bool present() const { return present_; }

  void setError(const QString& message);
  void clearError();
  bool hasError() const { return !error_.isEmpty(); }
  QString errorText() const { return error_; }
  QWidget* input() const;

  // Text of a value in a line edit: numbers as JSON, lists as "a, b, c".
  static QString displayText(const FieldSpec& spec, const nlohmann::json& value);
  // The inverse: text that is not valid for the kind stays a string, so the
  // validator can name it ("expected an integer, got \"eight\"").
  static nlohmann::json parseText(const FieldSpec& spec, const QString& text);

 Q_SIGNALS:
  void edited(const QString& pointer, const nlohmann::json& value);
  void resetRequested(const QString& pointer);

 private:
  void commitLine();
  FieldSpec spec_;
  QString pointer_;
  QCheckBox* check_ = nullptr;
  QComboBox* combo_ = nullptr;
  QLineEdit* line_ = nullptr;
  QToolButton* reset_;
  QLabel* errorLabel_;
  QString error_;
  bool present_ = false;
  bool updating_ = false;
};

}  // namespace wb::ui
