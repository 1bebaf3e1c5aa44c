// Form + JSON profile editing with live validation; see profile_editor.h.
#include "ui/profile_editor.h"

#include <QFile>
#include <QFontDatabase>
#include <QLabel>
#include <QPlainTextEdit>
#include <QScrollArea>
#include <QSplitter>
#include <QTextBlock>
#include <QVBoxLayout>

#include "ui/export.h"
#include "ui/json_locator.h"
#include "ui/profile_form.h"

namespace wb::ui {

using nlohmann::json;

ProfileEditor::ProfileEditor(const StageRegistry& registry, QWidget* parent)
    : QWidget(parent), registry_(registry), form_(new ProfileForm(registry)), text_(new QPlainTextEdit) {
  text_->setObjectName(QStringLiteral("profileJson"));
  text_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  text_->setLineWrapMode(QPlainTextEdit::NoWrap);
  text_->setTabChangesFocus(false);
  auto* scroll = new QScrollArea;
  scroll->setWidget(form_);
  scroll->setWidgetResizable(true);
  auto* split = new QSplitter(Qt::Horizontal);
  split->addWidget(scroll);
  split->addWidget(text_);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 1);
  scroll->setMinimumWidth(360);
  split->setSizes({560, 440});
  status_ = new QLabel;
  status_->setObjectName(QStringLiteral("profileStatus"));
  status_->setWordWrap(true);
  status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(split, 1);
  layout->addWidget(status_);

  connect(text_, &QPlainTextEdit::textChanged, this, &ProfileEditor::textChanged);
  connect(form_, &ProfileForm::fieldEdited, this, &ProfileEditor::setField);
  connect(form_, &ProfileForm::fieldReset, this, &ProfileEditor::resetField);
  connect(form_, &ProfileForm::stageAdded, this, [this](const QString& type) {
    json d = doc_;
    if (!d.contains("stages") || !d["stages"].is_array()) d["stages"] = json::array();
    d["stages"].push_back({{"type", type.toStdString()}});
    setDocumentText(d);
  });
  connect(form_, &ProfileForm::stageRemoved, this, [this](int index) {
    json d = doc_;
    if (d.contains("stages") && d["stages"].is_array() && index < static_cast<int>(d["stages"].size()))
      d["stages"].erase(static_cast<size_t>(index));
    setDocumentText(d);
  });
  textChanged();
}

void ProfileEditor::setText(const QString& text) { text_->setPlainText(text); }
QString ProfileEditor::text() const { return text_->toPlainText(); }

void ProfileEditor::setDocumentText(const json& doc) {
  applyingForm_ = true;
  // Through the document so the user can undo a form edit in the text view.
  QTextCursor c(text_->document());
  c.select(QTextCursor::Document);
  c.insertText(QString::fromStdString(doc.dump(2)) + QLatin1Char('\n'));
  applyingForm_ = false;
  textChanged();
}

void ProfileEditor::setField(const QString& pointer, const json& value) {
  json d = doc_;
  try {
    d[json::json_pointer(pointer.toStdString())] = value;
  } catch (const json::exception&) {
    return;  // a path through a non-object (only reachable from broken JSON)
  }
  setDocumentText(d);
}

void ProfileEditor::resetField(const QString& pointer) {
  json d = doc_;
  try {
    const json::json_pointer p(pointer.toStdString());
    if (!d.contains(p)) return;
    d.at(p.parent_pointer()).erase(p.back());
  } catch (const json::exception&) {
    return;
  }
  setDocumentText(d);
}

void ProfileEditor::textChanged() {
  if (applyingForm_) return;
  setModified(true);
  validate();
  Q_EMIT changed();
}

void ProfileEditor::validate() {
  const QString text = text_->toPlainText();
  const std::string utf8 = text.toStdString();
  profile_.reset();
  errorMessage_.clear();
  errorPointer_.clear();
  errorLine_ = errorColumn_ = 0;
  text_->setExtraSelections({});

  json parsed = json::parse(utf8, nullptr, false);
  const bool syntaxOk = !parsed.is_discarded();
  if (syntaxOk) doc_ = parsed;
  form_->setEnabled(syntaxOk);
  try {
    // parseProfileText gives syntax errors their line and column.
    profile_ = parseProfileText(utf8, sourceName_.toStdString(), registry_);
    form_->setDocument(doc_, toJson(*profile_));
    form_->clearErrors();
    status_->setText(tr("✓ valid profile \"%1\": %n stage(s)", nullptr, static_cast<int>(profile_->stages.size()))
                         .arg(QString::fromStdString(profile_->name)));
    status_->setStyleSheet(QStringLiteral("color:#2e7d32;"));
    return;
  } catch (const ProfileError& e) {
    errorMessage_ = QString::fromStdString(e.detail());
    errorPointer_ = QString::fromStdString(e.pointer());
    errorLine_ = e.line();
    errorColumn_ = e.column();
  } catch (const Error& e) {
    errorMessage_ = QString::fromStdString(e.what());
  }
  status_->setStyleSheet(QStringLiteral("color:#c00000;"));
  if (errorLine_ > 0) {
    status_->setText(tr("line %1, column %2: %3").arg(errorLine_).arg(errorColumn_).arg(errorMessage_));
    const QTextBlock block = text_->document()->findBlockByNumber(errorLine_ - 1);
    if (block.isValid()) {
      const int pos = block.position() + std::min(errorColumn_ - 1, std::max(0, block.length() - 1));
      markText(block.position(), std::max(pos + 1, block.position() + block.length() - 1));
    }
    form_->clearErrors();
    return;
  }
  status_->setText(errorPointer_.isEmpty() ? errorMessage_
                                           : QStringLiteral("%1: %2").arg(errorPointer_, errorMessage_));
  form_->setDocument(doc_, json());
  form_->showError(errorPointer_, errorMessage_);
  if (const auto range = locateJsonPointer(text, errorPointer_)) markText(range->start, range->end);
}

void ProfileEditor::markText(int start, int end) {
  const int last = std::max(0, text_->document()->characterCount() - 1);
  start = std::clamp(start, 0, last);
  end = std::clamp(end, start, last);
  QTextEdit::ExtraSelection sel;
  sel.cursor = QTextCursor(text_->document());
  sel.cursor.setPosition(start);
  sel.cursor.setPosition(end, QTextCursor::KeepAnchor);
  sel.format.setBackground(QColor(255, 205, 205));
  sel.format.setUnderlineStyle(QTextCharFormat::WaveUnderline);
  sel.format.setUnderlineColor(QColor(192, 0, 0));
  sel.format.setToolTip(errorMessage_);
  text_->setExtraSelections({sel});
}

bool ProfileEditor::load(const QString& path, QString* error) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    if (error) *error = tr("%1: cannot open the profile (%2)").arg(path, f.errorString());
    return false;
  }
  sourceName_ = path;
  setText(QString::fromUtf8(f.readAll()));
  setModified(false);
  return true;
}

bool ProfileEditor::save(const QString& path, QString* error) {
  try {
    writeFileAtomic(path, text().toUtf8());
  } catch (const Error& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
  sourceName_ = path;
  setModified(false);
  validate();  // messages now name the new file
  return true;
}

void ProfileEditor::setModified(bool modified) {
  if (modified_ == modified) return;
  modified_ = modified;
  Q_EMIT modifiedChanged(modified);
}

}  // namespace wb::ui
