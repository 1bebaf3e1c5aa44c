// The model side of a profile: where the weights come from (a Hugging Face folder,
// an hf:NAME from the cache, or a fresh config) and what that model is — its
// config, parameter count (Gpt2Config, torch-free) and bytes at the profile's
// dtype. It edits only the profile's /model section, through modelChosen().
#pragma once

#include <QWidget>
#include <cstdint>

#include <nlohmann/json.hpp>

class QLabel;
class QLineEdit;
class QSpinBox;
class QTableWidget;

namespace wb::ui {

class ModelPanel : public QWidget {
  Q_OBJECT
 public:
  explicit ModelPanel(QWidget* parent = nullptr);

  // The profile's /model section and /device/dtype, as the editor has them.
  void setModel(const nlohmann::json& model, const QString& dtype);
  int64_t parameterCount() const { return parameters_; }  // -1: unknown
  QString summaryText() const;
  // What "Open HF folder…" does after the dialog; public for tests and drops.
  bool chooseFolder(const QString& folder);
  void useFreshConfig();

  static double bytesPerParameter(const QString& dtype);

 Q_SIGNALS:
  void modelChosen(const nlohmann::json& model);

 private:
  void showConfig(const nlohmann::json& configJson, const QString& where);
  void showUnknown(const QString& why);

  QLabel* source_;
  QLabel* summary_;
  QTableWidget* table_;
  QLineEdit* hfName_;
  QSpinBox* nLayer_;
  QSpinBox* nHead_;
  QSpinBox* nEmbd_;
  QSpinBox* nPositions_;
  QSpinBox* vocab_;
  QString dtype_ = QStringLiteral("fp32");
  int64_t parameters_ = -1;
  bool updating_ = false;
};

}  // namespace wb::ui
