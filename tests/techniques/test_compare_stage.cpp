// The distill stage's epochs and the compare stage (issue 5), on tiny models and token
// files written here: epochs set the step count, evaluation runs after every epoch and
// checkpoints appear exactly at the listed epochs; the compare stage finds teacher,
// baseline and distilled student in the run, writes one table with three rows, and its
// student validation loss equals the distill stage's own evaluation of the same windows
// (1e-9 abs: same model, dtype and windows). The allocation tracker counts a known
// allocation exactly.
#include <fstream>
#include <map>

#include <QTemporaryDir>
#include <QtTest>

#include "core/bench/alloc_tracker.h"
#include "core/io/token_file.h"
#include "core/run/profile.h"
#include "core/run/runner.h"

using namespace wb;

namespace {

class Collector : public RunObserver {
 public:
  void onSample(const MetricSample& s) override {
    last[s.stage + ":" + s.series] = s.value;
    steps[s.stage + ":" + s.series].push_back(s.step);
  }
  void onLog(const LogLine& l) override { logs.push_back(l.stage + ": " + l.text); }
  std::map<std::string, double> last;
  std::map<std::string, std::vector<int64_t>> steps;
  std::vector<std::string> logs;
};

void writeTokens(const std::filesystem::path& path, int64_t n, uint64_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + seed * (i % 5)) % 61);
  writeTokenFile(path, ids);
}

}  // namespace

class TestCompareStage : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void allocationTrackerCountsBytes() {
    const torch::Device cpu(torch::kCPU);
    AllocationTracker tracker(cpu);
    int64_t held = 0;
    {
      const auto t = torch::empty({1024, 256}, torch::kFloat32);  // exactly 1 MiB
      held = tracker.currentBytes();
    }
    QCOMPARE(held, int64_t(1024 * 256 * 4));
    QCOMPARE(tracker.currentBytes(), int64_t(0));
    QCOMPARE(tracker.peakBytes(), int64_t(1024 * 256 * 4));
    const auto d = measureAllocations(cpu, [] { (void)torch::empty({100}, torch::kFloat64); });
    QCOMPARE(d.retainedBytes, int64_t(0));
    QCOMPARE(d.peakBytes, int64_t(800));
  }

  void distillEpochsThenCompare() {
    QTemporaryDir tmp;
    const std::filesystem::path dir = tmp.path().toStdString();
    writeTokens(dir / "train.bin", 6000, 3);
    writeTokens(dir / "val.bin", 1200, 5);
    auto j = nlohmann::json::parse(R"({
      "schema": 1, "name": "compare-unit", "seed": 7,
      "device": {"type": "cpu", "dtype": "fp32", "threads": 1},
      "model": {"source": "config",
                "config": {"vocab_size": 64, "n_layer": 4, "n_head": 2, "n_embd": 32, "n_positions": 32,
                           "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}},
      "data": {"seq_len": 16},
      "stages": [
        {"type": "distill", "name": "kd", "epochs": 2, "steps_per_epoch": 3, "checkpoint_epochs": [1, 2],
         "batch_size": 2, "warmup_steps": 1, "eval_windows": 10, "baseline": true, "hidden_weight": 0.5,
         "save_model": false},
        {"type": "compare", "name": "cmp", "eval_windows": 10, "warmup": 1, "repeats": 3, "seq_len": 16}
      ]})");
    j["data"]["train"] = (dir / "train.bin").string();
    j["data"]["val"] = (dir / "val.bin").string();
    const Profile p = parseProfile(j, "compare-unit", builtinStages());
    Collector c;
    CancelToken cancel;
    const RunResult r = runProfile(p, (dir / "runs").string(), &c, cancel);
    for (const auto& l : c.logs) qInfo("%s", l.c_str());
    QVERIFY2(r.status == RunStatus::Finished, r.message.c_str());

    // Epochs: 6 steps, evaluation at 0 and after each epoch, checkpoints at epochs 1 and 2.
    QCOMPARE(c.steps.at("kd:train/loss").size(), size_t(6));
    QCOMPARE(c.steps.at("kd:eval/loss"), (std::vector<int64_t>{0, 3, 6}));
    QCOMPARE(c.steps.at("kd:train/epoch"), (std::vector<int64_t>{3, 6}));
    QVERIFY(c.last.count("kd:train/cos_loss"));
    const auto ckpt = r.runDir / "checkpoints" / "kd";
    QVERIFY(std::filesystem::exists(ckpt / "step-00000003" / "DONE"));
    QVERIFY(std::filesystem::exists(ckpt / "step-00000006" / "DONE"));

    // Compare: three rows, the same numbers as the distill stage's own evaluation.
    for (const char* role : {"teacher", "baseline", "student"})
      for (const char* metric : {"val_loss", "perplexity", "params", "mb", "latency_ms", "tokens_per_s", "peak_mb"})
        QVERIFY2(c.last.count(std::string("cmp:compare/") + role + "/" + metric), (std::string(role) + metric).c_str());
    QVERIFY(std::fabs(c.last.at("cmp:compare/student/val_loss") - c.last.at("kd:distill/student_val_loss")) <= 1e-9);
    QVERIFY(std::fabs(c.last.at("cmp:compare/baseline/val_loss") - c.last.at("kd:distill/baseline_val_loss")) <= 1e-9);
    QVERIFY(std::fabs(c.last.at("cmp:compare/teacher/val_loss") - c.last.at("kd:distill/teacher_val_loss")) <= 1e-9);
    QCOMPARE(c.last.at("cmp:compare/student/params"), c.last.at("kd:distill/student_params"));
    QVERIFY(c.last.at("cmp:compare/teacher/params") > c.last.at("cmp:compare/student/params"));
    QVERIFY(c.last.at("cmp:compare/teacher/peak_mb") > c.last.at("cmp:compare/teacher/mb"));
    std::ifstream md(r.runDir / "compare" / "cmp.md");
    QVERIFY(md.good());
    int rows = 0;
    for (std::string line; std::getline(md, line);)
      if (line.starts_with("| teacher") || line.starts_with("| student from scratch") ||
          line.starts_with("| distilled student"))
        ++rows;
    QCOMPARE(rows, 3);
    QVERIFY(std::filesystem::exists(r.runDir / "compare" / "cmp.json"));
  }

  void compareWithoutDistillIsInputError() {
    QTemporaryDir tmp;
    const std::filesystem::path dir = tmp.path().toStdString();
    writeTokens(dir / "train.bin", 2000, 3);
    writeTokens(dir / "val.bin", 600, 5);
    auto j = nlohmann::json::parse(R"({
      "schema": 1, "name": "compare-alone", "seed": 7,
      "device": {"type": "cpu", "dtype": "fp32", "threads": 1},
      "model": {"source": "config",
                "config": {"vocab_size": 64, "n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 32}},
      "data": {"seq_len": 16},
      "stages": [{"type": "compare", "name": "cmp"}]})");
    j["data"]["train"] = (dir / "train.bin").string();
    j["data"]["val"] = (dir / "val.bin").string();
    const Profile p = parseProfile(j, "compare-alone", builtinStages());
    Collector c;
    CancelToken cancel;
    const RunResult r = runProfile(p, (dir / "runs").string(), &c, cancel);
    QVERIFY(r.status == RunStatus::Failed);
    QVERIFY(r.badInput);
    QVERIFY2(QString::fromStdString(r.message).contains("distill"), r.message.c_str());
  }
};

QTEST_APPLESS_MAIN(TestCompareStage)
#include "test_compare_stage.moc"
