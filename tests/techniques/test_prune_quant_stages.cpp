// The prune, quantize and benchmark stages through the runner on the quick-tour data
// with a tiny model (issue 6): Wanda 50% in two iterations with fine-tuning leaves
// exactly 50% zeros per tensor (±1) after the run's later train stage too (the masks
// travel in the run state); neuron pruning shrinks the saved model's n_inner; an int4
// stage reports Δppl / KL and bytes; the benchmark sweeps weight formats and writes
// n = repeats for every point; every stage leaves its metrics file in the run directory.
// The whole run uses the profile's model.attention switch (flash).
#include <fstream>
#include <map>

#include <QTemporaryDir>
#include <QtTest>

#include "core/model/model_loader.h"
#include "core/run/profile.h"
#include "core/run/runner.h"
#include "core/techniques/prune.h"
#include "tests/support/torch_support.h"

using namespace wb;

namespace {

class Collector : public RunObserver {
 public:
  void onSample(const MetricSample& s) override { last[s.stage + ":" + s.series] = s.value; }
  void onLog(const LogLine& l) override { logs.push_back(l.stage + ": " + l.text); }
  std::map<std::string, double> last;
  std::vector<std::string> logs;
};

nlohmann::json readJson(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

nlohmann::json profileJson() {
  return nlohmann::json::parse(R"({
    "schema": 1, "name": "prune-quant-stages", "seed": 7,
    "device": {"type": "cpu", "dtype": "fp32", "threads": 2},
    "model": {"source": "config",
              "config": {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64,
                         "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0},
              "attention": "flash"},
    "data": {"text": ["asset:moby-dick"], "val_fraction": 0.1, "seq_len": 32},
    "stages": [
      {"type": "prune", "name": "wanda", "method": "wanda", "sparsity": 0.5, "scope": "output",
       "iterations": 2, "finetune_steps": 2, "batch_size": 2, "calibration_batches": 2,
       "eval_windows": 2, "timing_repeats": 2},
      {"type": "train", "name": "after", "steps": 2, "batch_size": 2, "eval_every": 0,
       "eval_windows": 2, "warmup_steps": 0, "timing_warmup": 0},
      {"type": "prune", "name": "neurons", "method": "neurons", "neuron_fraction": 0.25,
       "eval_windows": 2, "timing_repeats": 2, "save_model": true},
      {"type": "quantize", "name": "int4", "format": "int4", "group_size": 32, "symmetric": false,
       "eval_windows": 2},
      {"type": "benchmark", "name": "bench", "weights": ["current", "fp32", "int8"],
       "batch_sizes": [1], "seq_lens": [8], "backends": ["math", "flash"], "decode_tokens": 2,
       "warmup": 0, "repeats": 2}
    ]})");
}

}  // namespace

class TestPruneQuantStages : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void stagesEndToEnd() {
    QTemporaryDir tmp;
    const Profile p = parseProfile(profileJson(), "prune-quant-stages", builtinStages());
    QCOMPARE(p.model.attention, std::string("flash"));  // every stage runs the flash backend
    Collector c;
    CancelToken cancel;
    const RunResult r = runProfile(p, tmp.path().toStdString(), &c, cancel);
    for (const auto& l : c.logs) qInfo("%s", l.c_str());
    QVERIFY2(r.status == RunStatus::Finished, r.message.c_str());

    // Wanda: the ramp reached 25% then 50%; exactly half of every tensor is zero.
    QVERIFY(std::abs(c.last.at("wanda:prune/sparsity") - 0.5) < 1e-9);
    const auto wanda = readJson(r.runDir / "prune" / "wanda.json");
    QCOMPARE(wanda["per_layer"].size(), size_t(2));
    for (const auto& row : wanda["per_tensor"]) {
      const int64_t numel = row["numel"], zeros = row["zeros"];
      QVERIFY2(std::llabs(zeros - numel / 2) <= 1, row.dump().c_str());
    }
    QCOMPARE(wanda["forward_seconds_after"]["n"].get<int64_t>(), int64_t(2));
    QCOMPARE(wanda["forward_seconds_after"]["samples"].size(), size_t(2));

    // After the later train stage (its saved model), still exactly half zeros.
    Gpt2 trained = loadModelFolder(r.runDir / "models" / "after");
    for (const auto& [name, w] : selectWeights(trained, prunableModules())) {
      const int64_t zeros = (w == 0).sum().item<int64_t>();
      QVERIFY2(std::llabs(zeros - w.numel() / 2) <= 1, name.c_str());
    }

    // Neurons: 32 of 128 removed per layer, the saved config says n_inner 96.
    Gpt2 shrunk = loadModelFolder(r.runDir / "models" / "neurons");
    QCOMPARE(shrunk->config().nInner, int64_t(96));
    QVERIFY(c.last.at("neurons:prune/parameters_after") < c.last.at("neurons:prune/parameters_before"));

    // int4: packed file, bytes, Δppl and KL against the unquantized model.
    QVERIFY(std::filesystem::exists(r.runDir / "quantized" / "int4.safetensors"));
    const auto q = readJson(r.runDir / "quantized" / "int4.json");
    QCOMPARE(q["scheme"].get<std::string>(), std::string("int4-g32-asym"));
    QVERIFY(q["kl"].get<double>() > 0.0);
    QVERIFY(c.last.count("int4:quant/delta_ppl"));

    // Benchmark: 3 formats x 2 backends, n = 2 everywhere, in all three files.
    const auto bench = readJson(r.runDir / "bench" / "bench.json");
    QCOMPARE(bench["points"].size(), size_t(6));
    for (const auto& pt : bench["points"])
      for (const auto& m : pt["metrics"]) QCOMPARE(m["n"].get<int64_t>(), int64_t(2));
    QVERIFY(bench["points"][0]["weights"].get<std::string>().starts_with("int4-g32-asym"));
    QVERIFY(bench["points"][4]["weights"].get<std::string>().starts_with("int8"));
    QVERIFY(std::filesystem::exists(r.runDir / "bench" / "bench.md"));
    QVERIFY(std::filesystem::exists(r.runDir / "bench" / "bench.csv"));
    QVERIFY(c.last.count("bench:bench/int8/flash/b1/t8/prefill_ms"));
    QVERIFY(std::filesystem::exists(r.runDir / "metrics.csv"));
  }

  void masksRefuseDataParallelTraining() {
    // Replicas are copies the masks never reach: refused at /parallel, not silently drifting.
    nlohmann::json j = profileJson();
    j["stages"] = nlohmann::json::array({j["stages"][0], j["stages"][1]});
    j["stages"][0]["iterations"] = 1;
    j["stages"][0]["finetune_steps"] = 0;
    j["parallel"] = {{"pipeline_stages", 1}, {"data_parallel", 2}, {"micro_batches", 1}};
    const Profile p = parseProfile(j, "prune-quant-stages", builtinStages());
    QTemporaryDir tmp;
    Collector c;
    CancelToken cancel;
    const RunResult r = runProfile(p, tmp.path().toStdString(), &c, cancel);
    QVERIFY(r.status == RunStatus::Failed);
    QVERIFY(r.badInput);
    QVERIFY2(r.message.find("/parallel") != std::string::npos, r.message.c_str());
    QVERIFY2(r.message.find("prune stage's masks") != std::string::npos, r.message.c_str());
    QVERIFY(std::filesystem::exists(r.runDir / "prune" / "wanda.json"));  // the prune stage's output kept
  }
};

QTEST_APPLESS_MAIN(TestPruneQuantStages)
#include "test_prune_quant_stages.moc"
