// The generated profile form; see profile_form.h.
#include "ui/profile_form.h"

#include <QComboBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>

#include "core/run/profile.h"
#include "ui/field_editor.h"

namespace wb::ui {

using nlohmann::json;

namespace {

// The root keys the form shows directly (device/model/data/parallel/stages have their own
// groups). Their defaults and checks stay in core's root table: the greyed value
// of an absent key comes from the validated profile.
const SectionSpec& rootFields() {
  static const SectionSpec s{"profile",
                             "Run profile",
                             {{"name", FieldKind::String, nullptr, "Run name, used in the run directory's name"},
                              {"seed", FieldKind::Int, nullptr, "Seed for weights, data order, dropout and sampling"}}};
  return s;
}

const FieldSpec& stageNameField() {
  static const FieldSpec f{"name", FieldKind::String, nullptr,
                           "Stage name, unique within the profile (defaults to the type)"};
  return f;
}

const json* at(const json& doc, const QString& pointer) {
  try {
    const json::json_pointer p(pointer.toStdString());
    return doc.contains(p) ? &doc.at(p) : nullptr;
  } catch (const json::exception&) {
    return nullptr;
  }
}

}  // namespace

ProfileForm::ProfileForm(const StageRegistry& registry, QWidget* parent)
    : QWidget(parent), registry_(registry), layout_(new QVBoxLayout(this)) {
  layout_->setContentsMargins(4, 4, 4, 4);
}

QString ProfileForm::structureOf(const json& doc) {
  // The form's rows depend only on which stages exist (and their types).
  QString s;
  if (doc.is_object() && doc.contains("stages") && doc["stages"].is_array())
    for (const auto& st : doc["stages"])
      s += QString::fromStdString(st.is_object() && st.contains("type") && st["type"].is_string()
                                      ? st["type"].get<std::string>()
                                      : std::string("?")) +
           QLatin1Char(';');
  return s;
}

QGroupBox* ProfileForm::section(const QString& title, const SectionSpec& spec, const QString& base,
                                const std::vector<FieldSpec>& extra) {
  auto* box = new QGroupBox(title);
  box->setToolTip(QString::fromStdString(spec.help));
  auto* form = new QFormLayout(box);
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  std::vector<FieldSpec> all = extra;
  all.insert(all.end(), spec.fields.begin(), spec.fields.end());
  for (const FieldSpec& f : all) {
    const QString pointer = base + QLatin1Char('/') + QString::fromStdString(f.key);
    auto* editor = new FieldEditor(f, pointer);
    connect(editor, &FieldEditor::edited, this, &ProfileForm::fieldEdited);
    connect(editor, &FieldEditor::resetRequested, this, &ProfileForm::fieldReset);
    auto* label = new QLabel(QString::fromStdString(f.key) + (f.required ? QStringLiteral(" *") : QString()));
    label->setToolTip(QString::fromStdString(f.help));
    form->addRow(label, editor);
    fields_.insert(pointer, editor);
  }
  return box;
}

void ProfileForm::rebuild(const json& doc) {
  fields_.clear();
  if (body_) {
    // The old rows may be inside the signal that led here (a Remove button):
    // detach them now, delete them once that signal has returned.
    body_->hide();
    body_->setParent(nullptr);
    body_->deleteLater();
  }
  body_ = new QWidget;
  auto* v = new QVBoxLayout(body_);
  v->setContentsMargins(0, 0, 0, 0);
  v->addWidget(section(tr("Profile"), rootFields(), QString()));
  v->addWidget(section(tr("Device"), deviceSection(), QStringLiteral("/device")));
  v->addWidget(section(tr("Model"), modelSection(), QStringLiteral("/model")));
  v->addWidget(section(tr("Data"), dataSection(), QStringLiteral("/data")));
  v->addWidget(section(tr("Parallel"), parallelSection(), QStringLiteral("/parallel")));

  const json* stages = at(doc, QStringLiteral("/stages"));
  const size_t count = stages && stages->is_array() ? stages->size() : 0;
  for (size_t i = 0; i < count; ++i) {
    const json& st = (*stages)[i];
    const std::string type = st.is_object() ? st.value("type", std::string("?")) : std::string("?");
    const StageType* t = registry_.find(type);
    const QString base = QStringLiteral("/stages/%1").arg(i);
    QGroupBox* box = t ? section(QStringLiteral("Stage %1: %2").arg(i).arg(QString::fromStdString(type)),
                                 t->schema, base, {stageNameField()})
                       : new QGroupBox(QStringLiteral("Stage %1: unknown type \"%2\"").arg(i).arg(
                             QString::fromStdString(type)));
    if (!t) box->setLayout(new QVBoxLayout);
    auto* remove = new QPushButton(tr("Remove stage"));
    remove->setObjectName(base + QStringLiteral("#remove"));
    connect(remove, &QPushButton::clicked, this, [this, i] { Q_EMIT stageRemoved(static_cast<int>(i)); });
    if (auto* form = qobject_cast<QFormLayout*>(box->layout())) {
      form->addRow(QString(), remove);
    } else {
      box->layout()->addWidget(remove);
    }
    v->addWidget(box);
  }

  auto* addRow = new QHBoxLayout;
  addType_ = new QComboBox;
  addType_->setObjectName(QStringLiteral("addStageType"));
  for (const auto& n : registry_.names()) addType_->addItem(QString::fromStdString(n));
  auto* add = new QPushButton(tr("Add stage"));
  add->setObjectName(QStringLiteral("addStage"));
  add->setEnabled(addType_->count() > 0);
  connect(add, &QPushButton::clicked, this, [this] { Q_EMIT stageAdded(addType_->currentText()); });
  addRow->addWidget(addType_, 1);
  addRow->addWidget(add);
  v->addLayout(addRow);
  v->addStretch(1);
  layout_->addWidget(body_);
}

void ProfileForm::setDocument(const json& doc, const json& validated) {
  const QString structure = structureOf(doc);
  if (!body_ || structure != structure_) {
    structure_ = structure;
    rebuild(doc);
  }
  for (auto it = fields_.begin(); it != fields_.end(); ++it) {
    FieldEditor* e = it.value();
    const json* value = at(doc, it.key());
    const json* checked = validated.is_null() ? nullptr : at(validated, it.key());
    const json fallback = checked ? *checked : e->spec().defaultValue;
    e->setValue(value ? *value : json(), value != nullptr, fallback);
  }
}

FieldEditor* ProfileForm::fieldFor(const QString& errorPointer) const {
  FieldEditor* best = nullptr;
  qsizetype bestLen = -1;
  for (auto it = fields_.begin(); it != fields_.end(); ++it) {
    const QString& p = it.key();
    if ((errorPointer == p || errorPointer.startsWith(p + QLatin1Char('/'))) && p.size() > bestLen) {
      best = it.value();
      bestLen = p.size();
    }
  }
  return best;
}

void ProfileForm::showError(const QString& pointer, const QString& message) {
  clearErrors();
  if (FieldEditor* e = fieldFor(pointer)) e->setError(message);
}

void ProfileForm::clearErrors() {
  for (FieldEditor* e : fields_) e->clearError();
}

}  // namespace wb::ui
