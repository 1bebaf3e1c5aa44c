// Issue 4: the profile editor drives the real widgets offscreen. Editing the form
// changes the JSON and editing the JSON changes the form; an invalid field is
// highlighted on its form row and in the text with core's validation message; a
// syntax error marks its line. Also the JSON-pointer locator and the model panel.
#include <QCheckBox>
#include <QComboBox>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QTextBlock>
#include <QtTest>

#include "core/model/gpt2_config.h"
#include "tests/support/ui_test_stages.h"
#include "ui/field_editor.h"
#include "ui/json_locator.h"
#include "ui/model_panel.h"
#include "ui/profile_editor.h"
#include "ui/profile_form.h"

using namespace wb;
using namespace wb::ui;
using nlohmann::json;

namespace {

// Types into a line edit the way a user does (select all, type, Enter).
void typeInto(QLineEdit* edit, const QString& text) {
  edit->setFocus();
  edit->selectAll();
  QTest::keyClick(edit, Qt::Key_Delete);
  QTest::keyClicks(edit, text);
  QTest::keyClick(edit, Qt::Key_Return);
}

QLineEdit* lineOf(ProfileEditor& e, const QString& pointer) {
  FieldEditor* f = e.form()->field(pointer);
  return f ? qobject_cast<QLineEdit*>(f->input()) : nullptr;
}

QString selectedText(const QPlainTextEdit* view) {
  const auto sels = view->extraSelections();
  return sels.isEmpty() ? QString() : sels.front().cursor.selectedText();
}

}  // namespace

class TestProfileEditor : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void formEditChangesJson() {
    ProfileEditor editor(test::uiTestStages());
    editor.setText(QString::fromStdString(test::synthProfile("form", {{"steps", 20}}).dump(2)));
    QVERIFY2(editor.isValid(), qPrintable(editor.errorMessage()));
    QLineEdit* steps = lineOf(editor, "/stages/0/steps");
    QVERIFY(steps);
    QCOMPARE(steps->text(), QString("20"));
    typeInto(steps, "77");
    QCOMPARE(editor.document()["stages"][0]["steps"].get<int>(), 77);
    QCOMPARE(json::parse(editor.text().toStdString())["stages"][0]["steps"].get<int>(), 77);
    QVERIFY(editor.isValid());
    QCOMPARE(editor.profile()->stages[0].params["steps"].get<int>(), 77);

    // A choice field (combo) and a default-only key: absent until edited, then written.
    QVERIFY(!editor.document()["stages"][0].contains("mode"));
    auto* mode = qobject_cast<QComboBox*>(editor.form()->field("/stages/0/mode")->input());
    QVERIFY(mode);
    mode->setCurrentText("fast");
    QCOMPARE(editor.document()["stages"][0]["mode"].get<std::string>(), std::string("fast"));

    // A list field written as "a, b".
    typeInto(lineOf(editor, "/data/text"), "a.txt, asset:moby-dick");
    QCOMPARE(editor.document()["data"]["text"], json::array({"a.txt", "asset:moby-dick"}));

    // Reset removes the key again; the form then shows the default greyed.
    editor.resetField("/stages/0/mode");
    QVERIFY(!editor.document()["stages"][0].contains("mode"));
    QCOMPARE(mode->currentText(), QString("normal"));
  }

  void jsonEditChangesForm() {
    ProfileEditor editor(test::uiTestStages());
    editor.setText(QString::fromStdString(test::synthProfile("text", {{"steps", 20}}).dump(2)));
    json doc = json::parse(editor.text().toStdString());
    doc["stages"][0]["noise"] = 0.25;
    doc["device"]["dtype"] = "bf16";
    doc["seed"] = 7;
    editor.setText(QString::fromStdString(doc.dump(2)));
    QVERIFY(editor.isValid());
    QCOMPARE(lineOf(editor, "/stages/0/noise")->text(), QString("0.25"));
    QCOMPARE(qobject_cast<QComboBox*>(editor.form()->field("/device/dtype")->input())->currentText(),
             QString("bf16"));
    QCOMPARE(lineOf(editor, "/seed")->text(), QString("7"));
    // An absent key shows the validated default as placeholder, not as a value.
    QCOMPARE(lineOf(editor, "/stages/0/repeats")->text(), QString());
    QCOMPARE(lineOf(editor, "/stages/0/repeats")->placeholderText(), QString("5"));

    // Adding a stage in the JSON adds its group to the form.
    doc["stages"].push_back({{"type", "synth"}, {"name", "second"}, {"steps", 3}});
    editor.setText(QString::fromStdString(doc.dump(2)));
    QVERIFY(editor.isValid());
    QVERIFY(editor.form()->field("/stages/1/steps"));
    QCOMPARE(lineOf(editor, "/stages/1/name")->text(), QString("second"));
  }

  void addAndRemoveStageFromForm() {
    ProfileEditor editor(test::uiTestStages());
    editor.setText(QString::fromStdString(test::synthProfile("stages").dump(2)));
    auto* add = editor.form()->findChild<QPushButton*>("addStage");
    QVERIFY(add);
    add->click();
    QCOMPARE(editor.document()["stages"].size(), size_t(2));
    QVERIFY(editor.isValid());
    QCOMPARE(editor.profile()->stages[1].name, std::string("synth-1"));
    auto* remove = editor.form()->findChild<QPushButton*>("/stages/0#remove");
    QVERIFY(remove);
    remove->click();
    QCOMPARE(editor.document()["stages"].size(), size_t(1));
    QVERIFY(!editor.form()->field("/stages/1/steps"));
  }

  void invalidFieldIsHighlighted_data() {
    QTest::addColumn<QString>("pointer");   // where the bad value goes (JSON pointer)
    QTest::addColumn<QString>("value");     // JSON text of the bad value
    QTest::addColumn<QString>("row");       // the form row that must light up
    QTest::addColumn<QString>("message");   // part of core's message
    QTest::addColumn<QString>("marked");    // what the JSON view marks
    QTest::newRow("string for int") << "/stages/0/steps" << "\"many\"" << "/stages/0/steps"
                                    << "expected an integer in [1, 100000], got \"many\"" << "\"steps\": \"many\"";
    QTest::newRow("out of range") << "/stages/0/noise" << "42" << "/stages/0/noise"
                                  << "expected a number in [0, 10]" << "\"noise\": 42";
    QTest::newRow("bad choice") << "/device/dtype" << "\"fp8\"" << "/device/dtype" << "expected one of \"fp32\""
                                << "\"dtype\": \"fp8\"";
    QTest::newRow("list element") << "/data/text" << "[\"a\", 3]" << "/data/text" << "expected a list of strings"
                                  << "3";
    QTest::newRow("config key") << "/model/config/n_layers" << "2" << "/model/config" << "unknown GPT-2 config key"
                                << "\"n_layers\": 2";
    QTest::newRow("unknown stage key") << "/stages/0/stepz" << "3" << "/stages/0" << "unknown key in synth"
                                       << "\"stepz\": 3";
  }
  void invalidFieldIsHighlighted() {
    QFETCH(QString, pointer);
    QFETCH(QString, value);
    QFETCH(QString, row);
    QFETCH(QString, message);
    QFETCH(QString, marked);
    ProfileEditor editor(test::uiTestStages());
    json doc = test::synthProfile("bad");
    doc[json::json_pointer(pointer.toStdString())] = json::parse(value.toStdString());
    editor.setText(QString::fromStdString(doc.dump(2)));
    QVERIFY(!editor.isValid());
    QVERIFY2(editor.errorPointer().startsWith(pointer.section('/', 0, 2)), qPrintable(editor.errorPointer()));
    QVERIFY2(editor.errorMessage().contains(message), qPrintable(editor.errorMessage()));
    QVERIFY2(editor.statusLabel()->text().contains(message), qPrintable(editor.statusLabel()->text()));
    // The text view marks the offending key and value (the element, in a list).
    QCOMPARE(selectedText(editor.jsonView()), marked);
    // The form row: red, with the same message under it, and only that row.
    if (row == "/stages/0") {
      // An unknown key has no row of its own: no row claims it.
      for (const QString& p : editor.form()->pointers()) QVERIFY2(!editor.form()->field(p)->hasError(), qPrintable(p));
    } else {
      FieldEditor* f = editor.form()->field(row);
      QVERIFY(f);
      QVERIFY(f->hasError());
      QVERIFY(f->errorText().contains(message));
      QVERIFY(f->input()->styleSheet().contains("#c00000"));
      auto* label = f->findChild<QLabel*>(row + "#error");
      QVERIFY(label && !label->isHidden());
      QVERIFY(label->text().contains(message));
      int lit = 0;
      for (const QString& p : editor.form()->pointers()) lit += editor.form()->field(p)->hasError();
      QCOMPARE(lit, 1);
    }
    // Fixing it in the form clears the highlight.
    if (row == "/stages/0/steps") {
      typeInto(lineOf(editor, row), "12");
      QVERIFY(editor.isValid());
      QVERIFY(!editor.form()->field(row)->hasError());
      QVERIFY(editor.jsonView()->extraSelections().isEmpty());
    }
  }

  void syntaxErrorMarksLine() {
    ProfileEditor editor(test::uiTestStages());
    editor.setText("{\n  \"schema\": 1,\n  \"name\": \"x\",,\n}");
    QVERIFY(!editor.isValid());
    QCOMPARE(editor.errorLine(), 3);
    QVERIFY(editor.errorColumn() > 0);
    QVERIFY(editor.statusLabel()->text().startsWith("line 3, column"));
    QVERIFY(!editor.form()->isEnabled());  // the form cannot edit text that does not parse
    const auto sels = editor.jsonView()->extraSelections();
    QCOMPARE(sels.size(), 1);
    QCOMPARE(sels.front().cursor.block().blockNumber(), 2);
  }

  void locatorFindsPointers_data() {
    QTest::addColumn<QString>("pointer");
    QTest::addColumn<QString>("expected");  // the marked text
    QTest::addColumn<bool>("exact");
    QTest::newRow("root key") << "/name" << "\"name\": \"a/b\"" << true;
    QTest::newRow("nested") << "/stages/1/rank" << "\"rank\": 8" << true;
    QTest::newRow("array element") << "/list/2" << "\"z\"" << true;
    QTest::newRow("escaped key") << "/we~1ird" << "\"we/ird\": {}" << true;
    QTest::newRow("missing key") << "/stages/0/missing" << "{\"type\": \"t\"}" << false;
  }
  void locatorFindsPointers() {
    QFETCH(QString, pointer);
    QFETCH(QString, expected);
    QFETCH(bool, exact);
    const QString text = R"({"name": "a/b", "list": ["x", "y", "z"], "we/ird": {},
      "stages": [{"type": "t"}, {"type": "u", "rank": 8}]})";
    const auto r = locateJsonPointer(text, pointer);
    QVERIFY(r.has_value());
    QCOMPARE(text.mid(r->start, r->end - r->start), expected);
    QCOMPARE(r->exact, exact);
  }

  void fieldTextParsing_data() {
    QTest::addColumn<int>("kind");
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("json");
    QTest::newRow("int") << int(FieldKind::Int) << "12" << "12";
    QTest::newRow("int word stays text") << int(FieldKind::Int) << "twelve" << "\"twelve\"";
    QTest::newRow("number") << int(FieldKind::Number) << "1e-3" << "0.001";
    QTest::newRow("int list") << int(FieldKind::IntList) << "1, 8, 32" << "[1,8,32]";
    QTest::newRow("int list json") << int(FieldKind::IntList) << "[1,2]" << "[1,2]";
    QTest::newRow("empty list") << int(FieldKind::StringList) << "" << "[]";
    QTest::newRow("string list") << int(FieldKind::StringList) << "c_attn, c_proj" << "[\"c_attn\",\"c_proj\"]";
    QTest::newRow("object") << int(FieldKind::Object) << "{\"n_layer\": 2}" << "{\"n_layer\":2}";
  }
  void fieldTextParsing() {
    QFETCH(int, kind);
    QFETCH(QString, text);
    QFETCH(QString, json);
    FieldSpec spec{"k", static_cast<FieldKind>(kind), nullptr, "help"};
    const nlohmann::json v = FieldEditor::parseText(spec, text);
    QCOMPARE(QString::fromStdString(v.dump()), json);
    // And back: the display text parses to the same value.
    QCOMPARE(QString::fromStdString(FieldEditor::parseText(spec, FieldEditor::displayText(spec, v)).dump()), json);
  }

  void modelPanelFreshConfig() {
    ProfileEditor editor(test::uiTestStages());
    editor.setText(QString::fromStdString(test::synthProfile("model").dump(2)));
    ModelPanel panel;
    QObject::connect(&panel, &ModelPanel::modelChosen, &editor,
                     [&](const json& m) { editor.setField("/model", m); });
    panel.setModel(editor.document()["model"], "fp32");
    Gpt2Config expected = Gpt2Config::fromJson({{"n_layer", 2}, {"n_head", 2}, {"n_embd", 32}}, "t", true);
    QCOMPARE(panel.parameterCount(), expected.parameterCount());
    QVERIFY(panel.summaryText().contains(QLocale(QLocale::English).toString(qlonglong(expected.parameterCount()))));

    panel.findChild<QSpinBox*>("fresh/n_layer")->setValue(12);
    panel.findChild<QSpinBox*>("fresh/n_head")->setValue(12);
    panel.findChild<QSpinBox*>("fresh/n_embd")->setValue(768);
    panel.findChild<QSpinBox*>("fresh/n_positions")->setValue(1024);
    panel.findChild<QSpinBox*>("fresh/vocab_size")->setValue(50257);
    panel.findChild<QPushButton*>("useFreshConfig")->click();
    QVERIFY(editor.isValid());
    QCOMPARE(editor.document()["model"]["config"]["n_embd"].get<int>(), 768);
    panel.setModel(editor.document()["model"], "fp32");
    // GPT-2 small as Hugging Face counts it (tied head counted once): 124,439,808.
    QCOMPARE(panel.parameterCount(), int64_t(124439808));
    panel.setModel(editor.document()["model"], "bf16");
    QVERIFY2(panel.summaryText().contains("bf16"), qPrintable(panel.summaryText()));
  }
};

QTEST_MAIN(TestProfileEditor)
#include "test_profile_editor.moc"
