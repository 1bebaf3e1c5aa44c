// The profile editor: the generated form and the JSON text side by side, kept in
// step both ways, with live validation by core's parser. A syntax error marks its
// line and column in the text; a field error (ProfileError::pointer()) is marked on
// the form row and on the key in the text, with core's message. It owns the JSON
// document; it does not run anything or know about files beyond load and save.
#pragma once

#include <QString>
#include <QWidget>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/run/profile.h"
#include "core/run/stage_registry.h"

class QLabel;
class QPlainTextEdit;

namespace wb::ui {

class ProfileForm;

class ProfileEditor : public QWidget {
  Q_OBJECT
 public:
  explicit ProfileEditor(const StageRegistry& registry = builtinStages(), QWidget* parent = nullptr);

  void setText(const QString& text);
  QString text() const;
  // The last syntactically valid document (the form edits this one).
  const nlohmann::json& document() const { return doc_; }
  // Form-side edits: set or remove one key (a JSON pointer) and refresh the text.
  void setField(const QString& pointer, const nlohmann::json& value);
  void resetField(const QString& pointer);

  bool isValid() const { return profile_.has_value(); }
  const std::optional<Profile>& profile() const { return profile_; }
  QString errorMessage() const { return errorMessage_; }
  QString errorPointer() const { return errorPointer_; }
  int errorLine() const { return errorLine_; }  // 0 when not a syntax error
  int errorColumn() const { return errorColumn_; }

  // ":/profiles/quick-tour.json" works too. False with `error` set on failure.
  bool load(const QString& path, QString* error);
  bool save(const QString& path, QString* error);
  QString sourceName() const { return sourceName_; }
  bool isModified() const { return modified_; }
  void setModified(bool modified);

  ProfileForm* form() const { return form_; }
  QPlainTextEdit* jsonView() const { return text_; }
  QLabel* statusLabel() const { return status_; }

 Q_SIGNALS:
  void changed();  // text or form changed (after validation)
  void modifiedChanged(bool modified);

 private:
  void textChanged();
  void validate();
  void markText(int start, int end);
  void setDocumentText(const nlohmann::json& doc);

  const StageRegistry& registry_;
  ProfileForm* form_;
  QPlainTextEdit* text_;
  QLabel* status_;
  nlohmann::json doc_ = nlohmann::json::object();
  std::optional<Profile> profile_;
  QString errorMessage_, errorPointer_;
  int errorLine_ = 0, errorColumn_ = 0;
  QString sourceName_ = QStringLiteral("<editor>");
  bool applyingForm_ = false;
  bool modified_ = false;
};

}  // namespace wb::ui
