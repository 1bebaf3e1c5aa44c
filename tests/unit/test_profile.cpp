// Profile parsing against a test-only stage registry: defaults filled from the table,
// JSON round trip, and errors that carry the JSON pointer or line:column.
#include <QtTest>

#include "core/run/profile.h"
#include "core/run/stage_registry.h"

using namespace wb;
using nlohmann::json;

namespace {

const StageRegistry& testRegistry() {
  static const StageRegistry r = [] {
    StageRegistry reg;
    reg.add({SectionSpec{"adapt",
                         "test stage",
                         {{"rank", FieldKind::Int, 8, "rank", 1, 4096},
                          {"lr", FieldKind::Number, 1e-3, "learning rate", 0.0, 1.0},
                          {"targets", FieldKind::StringList, json::array({"c_attn"}), "modules",
                           {}, {}, {"c_attn", "c_proj"}},
                          {"merge", FieldKind::Bool, false, "merge at the end"}}},
             nullptr});
    return reg;
  }();
  return r;
}

json minimal() {
  return json::parse(R"({"schema":1,"name":"t","model":{"source":"config","config":{"n_layer":2,"n_head":2,"n_embd":32}},
                         "stages":[{"type":"adapt"},{"type":"adapt","rank":4}]})");
}

}  // namespace

class TestProfile : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void fillsDefaults() {
    const Profile p = parseProfile(minimal(), "mem", testRegistry());
    QCOMPARE(p.seed, uint64_t(1337));
    QCOMPARE(p.device.type, std::string("cpu"));
    QCOMPARE(p.data.seqLen, int64_t(256));
    QCOMPARE(p.stages.size(), size_t(2));
    QCOMPARE(p.stages[0].params["rank"].get<int>(), 8);
    QCOMPARE(p.stages[1].params["rank"].get<int>(), 4);
    QCOMPARE(p.stages[0].name, std::string("adapt"));
    QCOMPARE(p.stages[1].name, std::string("adapt-1"));  // made unique
  }
  void roundTrips() {
    const Profile p = parseProfile(minimal(), "mem", testRegistry());
    const json once = toJson(p);
    const json twice = toJson(parseProfile(once, "mem", testRegistry()));
    QCOMPARE(QString::fromStdString(twice.dump()), QString::fromStdString(once.dump()));
  }
  void errorsNamePointer_data() {
    QTest::addColumn<QString>("patch");  // JSON merge-patch applied to minimal()
    QTest::addColumn<QString>("pointer");
    QTest::addColumn<QString>("message");
    QTest::newRow("string rank") << R"({"stages":[{"type":"adapt"},{"type":"adapt","rank":"eight"}]})"
                                 << "/stages/1/rank" << R"(expected an integer in [1, 4096], got "eight")";
    QTest::newRow("unknown key") << R"({"stages":[{"type":"adapt","rnak":3}]})" << "/stages/0/rnak"
                                 << "unknown key in adapt";
    QTest::newRow("bad choice") << R"({"stages":[{"type":"adapt","targets":["c_attn","wte"]}]})"
                                << "/stages/0/targets/1" << "expected a list of one of";
    QTest::newRow("device dtype") << R"({"device":{"dtype":"fp8"}})" << "/device/dtype"
                                  << R"(expected one of "fp32", "bf16", "fp16", got "fp8")";
    QTest::newRow("config key") << R"({"model":{"config":{"n_layers":2}}})" << "/model/config/n_layers"
                                << "unknown GPT-2 config key";
    QTest::newRow("heads") << R"({"model":{"config":{"n_head":3}}})" << "/model/config/n_embd"
                           << "divisible by n_head";
    QTest::newRow("no name") << R"({"name":null})" << "/name" << "missing required field";
    QTest::newRow("unknown type") << R"({"stages":[{"type":"quantise"}]})" << "/stages/0/type"
                                  << "unknown stage type \"quantise\"";
  }
  void errorsNamePointer() {
    QFETCH(QString, patch);
    QFETCH(QString, pointer);
    QFETCH(QString, message);
    json j = minimal();
    j.merge_patch(json::parse(patch.toStdString()));
    try {
      parseProfile(j, "p.json", testRegistry());
      QFAIL("no error");
    } catch (const ProfileError& e) {
      QCOMPARE(QString::fromStdString(e.pointer()), pointer);
      QVERIFY2(QString::fromStdString(e.detail()).contains(message), e.what());
      QVERIFY(QString::fromStdString(e.what()).startsWith("p.json: " + pointer + ": "));
    }
  }
  void syntaxErrorHasLineAndColumn() {
    const std::string text = "{\n  \"schema\": 1,\n  \"name\": \"x\",,\n}";
    try {
      parseProfileText(text, "bad.json", testRegistry());
      QFAIL("no error");
    } catch (const ProfileError& e) {
      QCOMPARE(e.line(), 3);
      QCOMPARE(e.column(), 15);
      QVERIFY2(QString(e.what()).startsWith("bad.json:3:15: invalid JSON"), e.what());
    }
  }
};

QTEST_APPLESS_MAIN(TestProfile)
#include "test_profile.moc"
