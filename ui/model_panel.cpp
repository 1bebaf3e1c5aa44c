// The model panel; see model_panel.h.
#include "ui/model_panel.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

#include "core/errors.h"
#include "core/model/gpt2_config.h"

namespace wb::ui {

using nlohmann::json;

ModelPanel::ModelPanel(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);

  auto* pick = new QGroupBox(tr("Start from"));
  auto* pickLayout = new QVBoxLayout(pick);
  auto* open = new QPushButton(tr("Open Hugging Face folder…"));
  open->setToolTip(tr("A folder with config.json and model.safetensors"));
  connect(open, &QPushButton::clicked, this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("GPT-2 model folder"));
    if (!dir.isEmpty()) chooseFolder(dir);
  });
  pickLayout->addWidget(open);
  auto* hfRow = new QHBoxLayout;
  hfName_ = new QLineEdit;
  hfName_->setPlaceholderText(QStringLiteral("gpt2, distilgpt2, …"));
  auto* useHf = new QPushButton(tr("Use hf:NAME"));
  useHf->setToolTip(tr("A model in the Hugging Face cache (~/.cache/huggingface/hub)"));
  connect(useHf, &QPushButton::clicked, this, [this] {
    const QString name = hfName_->text().trimmed();
    if (!name.isEmpty()) Q_EMIT modelChosen({{"source", "hf:" + name.toStdString()}});
  });
  hfRow->addWidget(hfName_, 1);
  hfRow->addWidget(useHf);
  pickLayout->addLayout(hfRow);

  auto* fresh = new QGroupBox(tr("Fresh config (seeded random weights)"));
  auto* freshForm = new QFormLayout(fresh);
  auto spin = [&](const char* key, int lo, int hi, int value) {
    auto* s = new QSpinBox;
    s->setObjectName(QStringLiteral("fresh/") + QLatin1String(key));
    s->setRange(lo, hi);
    s->setValue(value);
    freshForm->addRow(QLatin1String(key), s);
    return s;
  };
  const Gpt2Config defaults;
  nLayer_ = spin("n_layer", 1, 96, 4);
  nHead_ = spin("n_head", 1, 128, 4);
  nEmbd_ = spin("n_embd", 8, 16384, 128);
  nPositions_ = spin("n_positions", 8, 1 << 16, 256);
  vocab_ = spin("vocab_size", 2, 1 << 20, static_cast<int>(defaults.vocabSize));
  auto* useFresh = new QPushButton(tr("Use fresh config"));
  useFresh->setObjectName(QStringLiteral("useFreshConfig"));
  connect(useFresh, &QPushButton::clicked, this, &ModelPanel::useFreshConfig);
  freshForm->addRow(useFresh);

  auto* current = new QGroupBox(tr("Current model"));
  auto* cur = new QVBoxLayout(current);
  source_ = new QLabel;
  source_->setWordWrap(true);
  source_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  summary_ = new QLabel;
  summary_->setObjectName(QStringLiteral("modelSummary"));
  summary_->setWordWrap(true);
  table_ = new QTableWidget(0, 2);
  table_->setHorizontalHeaderLabels({tr("key"), tr("value")});
  table_->horizontalHeader()->setStretchLastSection(true);
  table_->verticalHeader()->hide();
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  cur->addWidget(source_);
  cur->addWidget(summary_);
  cur->addWidget(table_, 1);

  layout->addWidget(pick);
  layout->addWidget(fresh);
  layout->addWidget(current, 1);
  showUnknown(tr("no model yet"));
}

double ModelPanel::bytesPerParameter(const QString& dtype) {
  return dtype == QStringLiteral("fp32") ? 4.0 : 2.0;  // bf16 and fp16
}

QString ModelPanel::summaryText() const { return summary_->text(); }

void ModelPanel::showUnknown(const QString& why) {
  parameters_ = -1;
  summary_->setText(why);
  table_->setRowCount(0);
}

void ModelPanel::showConfig(const json& configJson, const QString& where) {
  Gpt2Config c;
  try {
    c = Gpt2Config::fromJson(configJson, where.toStdString(), false);
  } catch (const Error& e) {
    showUnknown(tr("invalid config: %1").arg(QString::fromStdString(e.what())));
    return;
  }
  parameters_ = c.parameterCount();
  const QLocale locale = QLocale::c();
  const double bytes = static_cast<double>(parameters_) * bytesPerParameter(dtype_);
  summary_->setText(tr("<b>%1</b> parameters · %2 in %3")
                        .arg(QLocale(QLocale::English).toString(static_cast<qlonglong>(parameters_)),
                             locale.formattedDataSize(static_cast<qint64>(bytes), 1,
                                                      QLocale::DataSizeTraditionalFormat),
                             dtype_));
  const json full = c.toJson();
  table_->setRowCount(0);
  for (const char* key : {"n_layer", "n_head", "n_embd", "n_inner", "n_positions", "vocab_size",
                          "activation_function", "tie_word_embeddings", "layer_norm_epsilon",
                          "resid_pdrop", "attn_pdrop", "embd_pdrop"}) {
    const int row = table_->rowCount();
    table_->insertRow(row);
    table_->setItem(row, 0, new QTableWidgetItem(QString::fromLatin1(key)));
    const json& v = full[key];
    table_->setItem(row, 1, new QTableWidgetItem(v.is_null() ? tr("4 × n_embd")
                                                              : QString::fromStdString(v.dump())));
  }
  updating_ = true;
  nLayer_->setValue(static_cast<int>(c.nLayer));
  nHead_->setValue(static_cast<int>(c.nHead));
  nEmbd_->setValue(static_cast<int>(c.nEmbd));
  nPositions_->setValue(static_cast<int>(c.nPositions));
  vocab_->setValue(static_cast<int>(c.vocabSize));
  updating_ = false;
}

void ModelPanel::setModel(const json& model, const QString& dtype) {
  dtype_ = dtype.isEmpty() ? QStringLiteral("fp32") : dtype;
  const std::string src = model.is_object() ? model.value("source", std::string()) : std::string();
  source_->setText(tr("Source: %1").arg(src.empty() ? tr("(none)") : QString::fromStdString(src)));
  if (src == "config") {
    if (model.contains("config")) {
      showConfig(model["config"], QStringLiteral("/model/config"));
    } else {
      showUnknown(tr("source \"config\" needs a config"));
    }
  } else if (src.starts_with("hf:")) {
    hfName_->setText(QString::fromStdString(src.substr(3)));
    showUnknown(tr("resolved in the Hugging Face cache when the run starts"));
  } else if (!src.empty()) {
    const QString file = QString::fromStdString(src) + QStringLiteral("/config.json");
    if (!QFileInfo::exists(file)) {
      showUnknown(tr("%1 not found").arg(file));
      return;
    }
    try {
      showConfig(json(Gpt2Config::fromFile(file.toStdString()).toJson()), file);
    } catch (const Error& e) {
      showUnknown(QString::fromStdString(e.what()));
    }
  } else {
    showUnknown(tr("no model yet"));
  }
}

bool ModelPanel::chooseFolder(const QString& folder) {
  const QString file = folder + QStringLiteral("/config.json");
  try {
    Gpt2Config::fromFile(file.toStdString());
  } catch (const Error& e) {
    showUnknown(QString::fromStdString(e.what()));
    return false;
  }
  Q_EMIT modelChosen({{"source", folder.toStdString()}});
  return true;
}

void ModelPanel::useFreshConfig() {
  if (updating_) return;
  Q_EMIT modelChosen({{"source", "config"},
                      {"config",
                       {{"n_layer", nLayer_->value()},
                        {"n_head", nHead_->value()},
                        {"n_embd", nEmbd_->value()},
                        {"n_positions", nPositions_->value()},
                        {"vocab_size", vocab_->value()}}}});
}

}  // namespace wb::ui
