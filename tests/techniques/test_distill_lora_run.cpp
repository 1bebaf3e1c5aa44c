// The distill and lora stages end to end on the quick-tour data (issue 5, label slow):
// a 4-layer teacher pretrained briefly, distilled into a 2-layer student initialised
// from teacher layers 0 and 2, with a 2-layer student trained from scratch on the same
// batches for the same steps as the baseline: the distilled student's validation loss
// must be lower. Then LoRA fine-tunes the distilled student (the chaining of issue 5).
#include <map>

#include <QTemporaryDir>
#include <QtTest>

#include "core/io/safetensors.h"
#include "core/run/profile.h"
#include "core/run/runner.h"
#include "core/techniques/lora.h"

using namespace wb;

namespace {

class Collector : public RunObserver {
 public:
  void onSample(const MetricSample& s) override { last[s.stage + ":" + s.series] = s.value; }
  void onLog(const LogLine& l) override { logs.push_back(l.stage + ": " + l.text); }
  std::map<std::string, double> last;
  std::vector<std::string> logs;
};

nlohmann::json profileJson() {
  return nlohmann::json::parse(R"({
    "schema": 1, "name": "kd-lora-slow", "seed": 1337,
    "device": {"type": "cpu", "dtype": "fp32", "threads": 2},
    "model": {"source": "config",
              "config": {"n_layer": 4, "n_head": 4, "n_embd": 64, "n_positions": 64,
                         "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}},
    "data": {"text": ["asset:moby-dick"], "val_fraction": 0.1, "seq_len": 64},
    "stages": [
      {"type": "train", "name": "teacher", "steps": 80, "batch_size": 4, "lr": 0.004,
       "min_lr": 0.0004, "warmup_steps": 8, "eval_every": 0, "eval_windows": 24,
       "save_model": false},
      {"type": "distill", "name": "distill", "steps": 50, "batch_size": 4, "lr": 0.004,
       "min_lr": 0.0004, "warmup_steps": 5, "eval_every": 0, "eval_windows": 24,
       "temperature": 2.0, "alpha": 0.5, "baseline": true, "save_model": false},
      {"type": "lora", "name": "lora", "steps": 4, "batch_size": 4, "rank": 8, "alpha": 16,
       "targets": ["c_attn"], "eval_every": 0, "eval_windows": 8}
    ]})");
}

}  // namespace

class TestDistillLoraRun : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void distilledBeatsScratchThenLora() {
    QTemporaryDir tmp;
    const Profile p = parseProfile(profileJson(), "kd-lora-slow", builtinStages());
    Collector c;
    CancelToken cancel;
    const RunResult r = runProfile(p, tmp.path().toStdString(), &c, cancel);
    for (const auto& l : c.logs) qInfo("%s", l.c_str());
    QVERIFY2(r.status == RunStatus::Finished, r.message.c_str());

    const double student = c.last.at("distill:distill/student_val_loss");
    const double scratch = c.last.at("distill:distill/baseline_val_loss");
    const double teacher = c.last.at("distill:distill/teacher_val_loss");
    qInfo("val loss: teacher %.4f, distilled student %.4f, student from scratch %.4f", teacher, student,
          scratch);
    QVERIFY2(student < scratch, "distillation did not beat training from scratch");
    QVERIFY(c.last.count("distill:train/kd_loss") && c.last.count("distill:train/ce_loss"));
    QVERIFY(c.last.count("distill:baseline/train/loss"));

    // LoRA ran on the 2-layer student, not the 4-layer teacher.
    Gpt2Config studentConfig = Gpt2Config::fromJson(p.model.config, "test", true);
    studentConfig.nLayer = 2;
    QCOMPARE(c.last.at("lora:lora/trainable_params"),
             static_cast<double>(loraParameterCount(studentConfig, {"c_attn"}, 8)));
    const auto adapter = r.runDir / "adapters" / "lora";
    QVERIFY(std::filesystem::exists(adapter / "adapter_config.json"));
    const auto file = SafetensorsFile::open(adapter / "adapter_model.safetensors");
    QCOMPARE(file.names().size(), size_t(4));
  }
};

QTEST_APPLESS_MAIN(TestDistillLoraRun)
#include "test_distill_lora_run.moc"
