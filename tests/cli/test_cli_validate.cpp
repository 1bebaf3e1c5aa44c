// `gpt2-bench validate` on every malformed profile in tests/data/profiles/bad/: exit
// code 2 and a message naming the file and the field (or line:column), as listed in
// expected.json; and every built-in profile validates.
#include <QtTest>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace fs = std::filesystem;

class TestCliValidate : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void badProfiles_data() {
    QTest::addColumn<QString>("file");
    QTest::addColumn<QString>("expected");
    const fs::path dir = wb::test::sourceDir() / "tests/data/profiles/bad";
    std::ifstream in(dir / "expected.json");
    const auto expected = nlohmann::json::parse(in);
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().filename() == "expected.json") continue;
      ++files;
      const auto name = e.path().filename().string();
      QVERIFY2(expected.contains(name), ("no expectation for " + name).c_str());
      QTest::newRow(name.c_str()) << QString::fromStdString(e.path().string())
                                  << QString::fromStdString(expected[name].get<std::string>());
    }
    QVERIFY(files >= 12);
    QCOMPARE(static_cast<size_t>(files), expected.size());
  }
  void badProfiles() {
    QFETCH(QString, file);
    QFETCH(QString, expected);
    const auto r = wb::test::runProcess(wb::test::benchExe(), {"validate", file.toStdString()});
    QCOMPARE(r.exitCode, 2);
    const QString err = QString::fromStdString(r.err);
    QVERIFY2(err.contains(QString::fromStdString(fs::path(file.toStdString()).filename().string())),
             qPrintable(err));
    QVERIFY2(err.contains(expected), qPrintable("got: " + err + "\nwant: " + expected));
  }
  void builtinProfilesValidate_data() {
    QTest::addColumn<QString>("file");
    for (const auto& e : fs::directory_iterator(wb::test::sourceDir() / "resources/profiles"))
      QTest::newRow(e.path().filename().c_str()) << QString::fromStdString(e.path().string());
  }
  void builtinProfilesValidate() {
    QFETCH(QString, file);
    const auto r = wb::test::runProcess(wb::test::benchExe(), {"validate", file.toStdString()});
    QVERIFY2(r.exitCode == 0, r.err.c_str());
  }
  void missingFile() {
    const auto r = wb::test::runProcess(wb::test::benchExe(), {"validate", "/nonexistent/p.json"});
    QCOMPARE(r.exitCode, 2);
    QVERIFY(QString::fromStdString(r.err).contains("/nonexistent/p.json: cannot open the profile"));
  }
};

QTEST_GUILESS_MAIN(TestCliValidate)
#include "test_cli_validate.moc"
