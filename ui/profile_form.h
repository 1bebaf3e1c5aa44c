// The profile as a form, generated from core's defaults tables: the root keys,
// device, model and data sections (profile.h) and one group per stage from its
// StageType schema in the registry. Every row is a FieldEditor named by its JSON
// pointer. It shows a JSON document and reports edits; ProfileEditor owns the
// document and does the validation.
#pragma once

#include <QMap>
#include <QString>
#include <QWidget>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/run/schema.h"
#include "core/run/stage_registry.h"

class QComboBox;
class QFormLayout;
class QGroupBox;
class QVBoxLayout;

namespace wb::ui {

class FieldEditor;

class ProfileForm : public QWidget {
  Q_OBJECT
 public:
  explicit ProfileForm(const StageRegistry& registry, QWidget* parent = nullptr);

  // `validated` (the profile with every default filled, when it validated) gives the
  // greyed values of absent keys; otherwise the tables' defaults do.
  void setDocument(const nlohmann::json& doc, const nlohmann::json& validated);
  FieldEditor* field(const QString& pointer) const { return fields_.value(pointer); }
  // The row an error pointer belongs to: the longest row pointer that prefixes it
  // ("/stages/0/targets/1" -> "/stages/0/targets").
  FieldEditor* fieldFor(const QString& errorPointer) const;
  void showError(const QString& pointer, const QString& message);
  void clearErrors();
  QStringList pointers() const { return fields_.keys(); }

 Q_SIGNALS:
  void fieldEdited(const QString& pointer, const nlohmann::json& value);
  void fieldReset(const QString& pointer);
  void stageAdded(const QString& type);
  void stageRemoved(int index);

 private:
  void rebuild(const nlohmann::json& doc);
  QGroupBox* section(const QString& title, const SectionSpec& spec, const QString& base,
                     const std::vector<FieldSpec>& extra = {});
  static QString structureOf(const nlohmann::json& doc);

  const StageRegistry& registry_;
  QVBoxLayout* layout_;
  QWidget* body_ = nullptr;
  QComboBox* addType_ = nullptr;
  QMap<QString, FieldEditor*> fields_;
  QString structure_;
};

}  // namespace wb::ui
