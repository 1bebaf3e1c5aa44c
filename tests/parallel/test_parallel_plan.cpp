// Issue 8, the torch-free half of pipeline parallelism: schedule properties (every
// micro-batch forwarded and backwarded once per stage, 1F1B holds at most N - s
// activations, GPipe M), bubble accounting on a fake clock (exactly (N-1)/(M+N-1)
// with uniform stage times, 1e-12 absolute) and on hand-made spans, partitioning,
// the launcher environment, and the profile's "parallel" errors with JSON pointers.
#include <QtTest>

#include <map>

#include "core/parallel/dist_env.h"
#include "core/parallel/partition.h"
#include "core/parallel/schedule.h"
#include "core/parallel/timeline.h"
#include "core/run/profile.h"
#include "core/run/stage_registry.h"

using namespace wb;
using nlohmann::json;

Q_DECLARE_METATYPE(wb::ScheduleKind)

namespace {

EnvLookup fakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

json trainProfile() {
  return json::parse(R"({"schema":1,"name":"pp",
    "model":{"source":"config","config":{"n_layer":4,"n_head":2,"n_embd":32,"vocab_size":64,"n_positions":32}},
    "parallel":{"pipeline_stages":2,"micro_batches":4,"schedule":"gpipe"},
    "stages":[{"type":"train","batch_size":8}]})");
}

void addScheduleRows() {
  QTest::addColumn<ScheduleKind>("kind");
  QTest::addColumn<int>("stages");
  QTest::addColumn<int>("micro");
  for (ScheduleKind k : {ScheduleKind::GPipe, ScheduleKind::OneFOneB})
    for (int n : {1, 2, 3, 4, 8})
      for (int m : {1, 2, 3, 4, 8, 16})
        QTest::addRow("%s N%d M%d", toString(k), n, m) << k << n << m;
}

}  // namespace

class TestParallelPlan : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void scheduleCoversEveryMicroBatchOnce_data() { addScheduleRows(); }
  void scheduleCoversEveryMicroBatchOnce() {
    QFETCH(ScheduleKind, kind);
    QFETCH(int, stages);
    QFETCH(int, micro);
    for (int s = 0; s < stages; ++s) {
      const auto p = buildSchedule(kind, stages, micro, s);
      std::map<std::pair<OpKind, int64_t>, int> count;
      std::map<std::pair<OpKind, int64_t>, size_t> at;
      for (size_t i = 0; i < p.size(); ++i) {
        ++count[{p[i].op, p[i].microBatch}];
        at[{p[i].op, p[i].microBatch}] = i;
      }
      const bool first = s == 0, last = s == stages - 1;
      auto n = [&](OpKind k, int64_t mb) { return count[std::make_pair(k, mb)]; };
      auto pos = [&](OpKind k, int64_t mb) { return at[std::make_pair(k, mb)]; };
      for (int64_t mb = 0; mb < micro; ++mb) {
        QCOMPARE(n(OpKind::Forward, mb), 1);
        QCOMPARE(n(OpKind::Backward, mb), 1);
        QCOMPARE(n(OpKind::RecvActivation, mb), first ? 0 : 1);
        QCOMPARE(n(OpKind::SendActivation, mb), last ? 0 : 1);
        QCOMPARE(n(OpKind::RecvGradient, mb), last ? 0 : 1);
        QCOMPARE(n(OpKind::SendGradient, mb), first ? 0 : 1);
        QVERIFY(pos(OpKind::Forward, mb) < pos(OpKind::Backward, mb));
        if (!first) QVERIFY(pos(OpKind::RecvActivation, mb) < pos(OpKind::Forward, mb));
        if (!last) QVERIFY(pos(OpKind::RecvGradient, mb) < pos(OpKind::Backward, mb));
      }
      QCOMPARE(p.size(), size_t(micro) * (2 + (first ? 0 : 2) + (last ? 0 : 2)));
    }
  }

  void inFlightBound_data() { addScheduleRows(); }
  void inFlightBound() {
    QFETCH(ScheduleKind, kind);
    QFETCH(int, stages);
    QFETCH(int, micro);
    for (int s = 0; s < stages; ++s) {
      const int64_t peak = peakInFlight(buildSchedule(kind, stages, micro, s));
      if (kind == ScheduleKind::GPipe) {
        QCOMPARE(peak, int64_t(micro));
      } else {
        QVERIFY(peak <= stages);
        QCOMPARE(peak, std::min<int64_t>(stages - s, micro));
      }
    }
  }

  // Uniform stages, free communication: the simulated bubble of every stage is the
  // textbook (N-1)/(M+N-1), to 1e-12 absolute; the programs never deadlock.
  void bubbleMatchesTheoryOnFakeClock_data() { addScheduleRows(); }
  void bubbleMatchesTheoryOnFakeClock() {
    QFETCH(ScheduleKind, kind);
    QFETCH(int, stages);
    QFETCH(int, micro);
    FakeCosts c;
    c.forward.assign(static_cast<size_t>(stages), 1.0);
    c.backward.assign(static_cast<size_t>(stages), 2.0);
    const auto timing = summarize(simulate(kind, stages, micro, c));
    const double theory = theoreticalBubble(stages, micro);
    for (const auto& t : timing) {
      QVERIFY2(std::abs(t.bubble() - theory) < 1e-12,
               qPrintable(QString("stage bubble %1 vs theory %2").arg(t.bubble()).arg(theory)));
      QCOMPARE(t.forwardS, 1.0 * micro);
      QCOMPARE(t.backwardS, 2.0 * micro);
      QCOMPARE(t.windowS, 3.0 * (micro + stages - 1));
    }
    QVERIFY(std::abs(measuredBubble(timing) - theory) < 1e-12);
  }

  // A slow stage makes the bubble worse than theory; send costs count as comm, not idle.
  void imbalanceAndCommAccounting() {
    FakeCosts c;
    c.forward = {1.0, 2.0};
    c.backward = {2.0, 4.0};
    c.send = 0.25;
    const auto timing = summarize(simulate(ScheduleKind::OneFOneB, 2, 4, c));
    QVERIFY(measuredBubble(timing) > theoreticalBubble(2, 4));
    QCOMPARE(timing[0].commS, 4 * 0.25);  // 4 activations sent
    QCOMPARE(timing[1].commS, 4 * 0.25);  // 4 gradients sent
    for (const auto& t : timing)
      QVERIFY(std::abs(t.forwardS + t.backwardS + t.commS + t.idleS - t.windowS) < 1e-12);
  }

  // Why the NCCL transport must buffer its sends: with sends that wait for their
  // receive, 1F1B deadlocks (stage 0 sends activation 1 while stage 1 sends gradient
  // 0), GPipe does not and keeps its bubble.
  void rendezvousSendsDeadlock1F1B() {
    FakeCosts c;
    c.forward = {1.0, 1.0};
    c.backward = {2.0, 2.0};
    QVERIFY_THROWS_EXCEPTION(RunError,
                             simulate(ScheduleKind::OneFOneB, 2, 2, c, SendMode::Rendezvous));
    const auto t = summarize(simulate(ScheduleKind::GPipe, 2, 4, c, SendMode::Rendezvous));
    QVERIFY(std::abs(measuredBubble(t) - theoreticalBubble(2, 4)) < 1e-12);
  }

  // Hand-made spans: window 10 s; stage 0 computes 6 s and sends 1 s (idle 3 s), stage
  // 1 computes 8 s after waiting 2 s (idle 2 s). Exact in binary.
  void summarizeHandMadeSpans() {
    std::vector<StageTimeline> t(2);
    t[0] = {{SpanKind::Forward, 0, 2}, {SpanKind::Comm, 2, 3}, {SpanKind::Backward, 6, 10}};
    t[1] = {{SpanKind::Wait, 0, 2}, {SpanKind::Forward, 2, 4}, {SpanKind::Backward, 4, 10}};
    const auto s = summarize(t);
    QCOMPARE(s[0].windowS, 10.0);
    QCOMPARE(s[0].forwardS, 2.0);
    QCOMPARE(s[0].backwardS, 4.0);
    QCOMPARE(s[0].commS, 1.0);
    QCOMPARE(s[0].idleS, 3.0);
    QCOMPARE(s[1].idleS, 2.0);
    QCOMPARE(measuredBubble(s), (0.3 + 0.2) / 2);
  }

  void balancedPartition() {
    // Costs come per half-block; these blocks cost 10 (4 + 6).
    auto blocks = [](size_t n) {
      std::vector<int64_t> h;
      for (size_t i = 0; i < n; ++i) h.insert(h.end(), {4, 6});
      return h;
    };
    const auto eight = blocks(8);
    auto p = wb::balancedPartition(eight, 0, 0, 4);
    QCOMPARE(p.size(), size_t(4));
    for (const auto& s : p) QCOMPARE(s.layers(), 2.0);
    QVERIFY(p[0].embeddings && !p[0].head && p[3].head && !p[3].embeddings);
    QCOMPARE(p[3].endLayer(), int64_t(8));
    // A heavy head (vocab x n_embd) pushes layers to the first stage: 20+6x10 = 60+2x10.
    p = wb::balancedPartition(eight, 20, 60, 2);
    QCOMPARE(p[0].layers(), 6.0);
    QCOMPARE(p[0].cost, int64_t(80));
    QCOMPARE(p[1].cost, int64_t(80));
    // Ties go to the earliest cut: 10 | 20 and 20 | 10 both have a largest stage of 20.
    p = wb::balancedPartition(blocks(3), 0, 0, 2);
    QCOMPARE(p[0].layers(), 1.0);
    p = wb::balancedPartition(blocks(3), 0, 0, 1);
    QVERIFY(p[0].embeddings && p[0].head && p[0].layers() == 3.0);
    p = explicitPartition(eight, 0, 0, {1, 3, 4});
    QCOMPARE(p[1].firstLayer(), int64_t(1));
    QCOMPARE(p[2].firstLayer(), int64_t(4));
    QCOMPARE(QString::fromStdString(describe(p)), QString("emb+h0-0 | h1-3 | h4-7+head"));
  }

  void halfLayerPartition() {
    std::vector<int64_t> four;
    for (int i = 0; i < 4; ++i) four.insert(four.end(), {4, 6});
    // Whole-block cuts: 3 blocks + a head of 25 cannot beat 30 | 35 (or 40 | 25).
    auto p = wb::balancedPartition(four, 0, 25, 2);
    QCOMPARE(p[0].cost, int64_t(30));
    QCOMPARE(p[1].cost, int64_t(35));
    // Half cuts: 3.5 | 0.5 (the last MLP half with the head) gives 34 | 31.
    p = wb::balancedPartition(four, 0, 25, 2, true);
    QCOMPARE(p[0].layers(), 3.5);
    QCOMPARE(p[0].cost, int64_t(34));
    QCOMPARE(p[1].cost, int64_t(31));
    QVERIFY(p[0].hasAttention(3) && !p[0].hasMlp(3) && p[1].hasMlp(3) && !p[1].hasAttention(3));
    QCOMPARE(p[0].endLayer(), int64_t(4));
    QCOMPARE(p[1].firstLayer(), int64_t(3));
    QCOMPARE(QString::fromStdString(describe(p)), QString("emb+h0-3.attn | h3.mlp+head"));
    p = explicitPartition(four, 0, 0, {1.5, 0.5, 2});
    QCOMPARE(p[1].begin, int64_t(3));
    QCOMPARE(p[1].end, int64_t(4));
    QCOMPARE(p[1].cost, int64_t(6));
    QCOMPARE(QString::fromStdString(describe(p)), QString("emb+h0-1.attn | h1.mlp | h2-3+head"));
    QCOMPARE(halvesText(13), std::string("6.5"));
    QCOMPARE(halvesText(14), std::string("7"));
  }

  void partitionErrorsNamePointer() {
    auto pointerOf = [](auto fn) {
      try {
        fn();
      } catch (const ProfileError& e) {
        return QString::fromStdString(e.pointer());
      }
      return QString("no error");
    };
    const std::vector<int64_t> twoBlocks{1, 1, 1, 1};
    QCOMPARE(pointerOf([&] {
               wb::balancedPartition(twoBlocks, 0, 0, 3);
             }),
             QString("/parallel/pipeline_stages"));
    QCOMPARE(pointerOf([&] {
               wb::balancedPartition(twoBlocks, 0, 0, 5, true);
             }),
             QString("/parallel/pipeline_stages"));
    QCOMPARE(pointerOf([&] {
               explicitPartition(twoBlocks, 0, 0, {1, 2});
             }),
             QString("/parallel/balance"));
    QCOMPARE(pointerOf([&] {
               explicitPartition(twoBlocks, 0, 0, {2, 0});
             }),
             QString("/parallel/balance/1"));
    QCOMPARE(pointerOf([&] {
               explicitPartition(twoBlocks, 0, 0, {1.25, 0.75});
             }),
             QString("/parallel/balance/0"));
  }

  void distEnvFromTorchrun() {
    const DistEnv d = readDistEnv(fakeEnv({{"RANK", "3"},
                                           {"WORLD_SIZE", "4"},
                                           {"LOCAL_RANK", "1"},
                                           {"MASTER_ADDR", "10.0.0.1"},
                                           {"MASTER_PORT", "29500"}}));
    QCOMPARE(d.rank, 3);
    QCOMPARE(d.worldSize, 4);
    QCOMPARE(d.localRank, 1);
    QCOMPARE(d.masterAddr, std::string("10.0.0.1"));
    QCOMPARE(d.masterPort, 29500);
    QCOMPARE(d.launcher, std::string("torchrun"));
    QVERIFY(d.distributed());
  }
  void distEnvSlurmFallbackAndNone() {
    DistEnv d = readDistEnv(fakeEnv({{"SLURM_PROCID", "1"},
                                     {"SLURM_NTASKS", "2"},
                                     {"SLURM_LOCALID", "1"},
                                     {"MASTER_ADDR", "node1"},
                                     {"MASTER_PORT", "1234"}}));
    QCOMPARE(d.launcher, std::string("slurm"));
    QCOMPARE(d.rank, 1);
    QCOMPARE(d.localRank, 1);
    d = readDistEnv(fakeEnv({}));
    QCOMPARE(d.launcher, std::string("none"));
    QCOMPARE(d.worldSize, 1);
    QVERIFY(!d.distributed());
    d = readDistEnv(fakeEnv({{"RANK", "0"}, {"WORLD_SIZE", "1"}}));  // one process needs no master
    QCOMPARE(d.worldSize, 1);
  }
  void distEnvErrors_data() {
    QTest::addColumn<QString>("vars");  // JSON object of variables
    QTest::addColumn<QString>("where");
    QTest::addColumn<QString>("message");
    QTest::newRow("rank too big")
        << R"({"RANK":"4","WORLD_SIZE":"4","MASTER_ADDR":"a","MASTER_PORT":"1"})"
        << "environment: RANK"
        << "not below the world size 4";
    QTest::newRow("not a number") << R"({"RANK":"x","WORLD_SIZE":"2"})"
                                  << "environment: RANK"
                                  << "expected an integer";
    QTest::newRow("trailing junk") << R"({"RANK":"0","WORLD_SIZE":"2x"})"
                                   << "environment: WORLD_SIZE"
                                   << "expected an integer";
    QTest::newRow("no world") << R"({"RANK":"0"})"
                              << "environment: WORLD_SIZE"
                              << "unset";
    QTest::newRow("no master") << R"({"RANK":"0","WORLD_SIZE":"2"})"
                               << "environment: MASTER_ADDR"
                               << "unset";
    QTest::newRow("bad port")
        << R"({"RANK":"0","WORLD_SIZE":"2","MASTER_ADDR":"h","MASTER_PORT":"70000"})"
        << "environment: MASTER_PORT"
        << "[1, 65535]";
    QTest::newRow("slurm no master") << R"({"SLURM_PROCID":"0","SLURM_NTASKS":"2"})"
                                     << "environment: MASTER_ADDR"
                                     << "unset";
  }
  void distEnvErrors() {
    QFETCH(QString, vars);
    QFETCH(QString, where);
    QFETCH(QString, message);
    std::map<std::string, std::string> m;
    const json parsed = json::parse(vars.toStdString());
    for (const auto& [k, v] : parsed.items()) m[k] = v.get<std::string>();
    try {
      readDistEnv(fakeEnv(m));
      QFAIL("no error");
    } catch (const InputError& e) {
      QCOMPARE(QString::fromStdString(e.where()), where);
      QVERIFY2(QString(e.what()).contains(message), e.what());
    }
  }

  void profileParallelRoundTrip() {
    const Profile p = parseProfile(trainProfile(), "pp.json", builtinStages());
    QCOMPARE(p.parallel.pipelineStages, 2);
    QCOMPARE(p.parallel.microBatches, int64_t(4));
    QCOMPARE(p.parallel.schedule, std::string("gpipe"));
    QCOMPARE(p.parallel.dataParallel, 1);
    QVERIFY(p.parallel.balance.empty());
    const json once = toJson(p);
    QCOMPARE(QString::fromStdString(toJson(parseProfile(once, "pp.json", builtinStages())).dump()),
             QString::fromStdString(once.dump()));
    json halves = trainProfile();
    halves["parallel"]["balance"] = {1.5, 2.5};
    const Profile h = parseProfile(halves, "pp.json", builtinStages());
    QCOMPARE(h.parallel.balance, (std::vector<double>{1.5, 2.5}));
    QCOMPARE(QString::fromStdString(toJson(h)["parallel"]["balance"].dump()), QString("[1.5,2.5]"));
    // Without a parallel section nothing is pipelined.
    json plain = trainProfile();
    plain.erase("parallel");
    QVERIFY(!parseProfile(plain, "pp.json", builtinStages()).parallel.pipelined());
  }
  void profileParallelErrors_data() {
    QTest::addColumn<QString>("patch");
    QTest::addColumn<QString>("pointer");
    QTest::addColumn<QString>("message");
    QTest::newRow("more stages than layers") << R"({"parallel":{"pipeline_stages":5}})"
                                             << "/parallel/pipeline_stages"
                                             << "only 4 layers";
    QTest::newRow("balance sum") << R"({"parallel":{"balance":[1,2]}})"
                                 << "/parallel/balance"
                                 << "sum to 3 but the model has 4 layers";
    QTest::newRow("balance length") << R"({"parallel":{"balance":[1,1,2]}})"
                                    << "/parallel/balance"
                                    << "lists 3 stages but pipeline_stages is 2";
    QTest::newRow("balance zero") << R"({"parallel":{"balance":[0,4]}})"
                                  << "/parallel/balance/0"
                                  << "expected a list of numbers";
    QTest::newRow("balance quarter") << R"({"parallel":{"balance":[1.75,2.25]}})"
                                     << "/parallel/balance/0"
                                     << "whole or half number of layers";
    QTest::newRow("balance half sum") << R"({"parallel":{"balance":[1.5,2]}})"
                                      << "/parallel/balance"
                                      << "sum to 3.5 but the model has 4 layers";
    QTest::newRow("batch split") << R"({"parallel":{"micro_batches":3}})"
                                 << "/stages/0/batch_size"
                                 << "does not split into 3 equal micro-batches";
    QTest::newRow("schedule") << R"({"parallel":{"schedule":"zb"}})"
                              << "/parallel/schedule"
                              << R"(expected one of "1f1b", "gpipe")";
    QTest::newRow("unknown key") << R"({"parallel":{"stages":2}})"
                                 << "/parallel/stages"
                                 << "unknown key";
    QTest::newRow("data parallel split") << R"({"parallel":{"data_parallel":3}})"
                                         << "/stages/0/batch_size"
                                         << "does not split into 3 replicas";
    QTest::newRow("gpus") << R"({"device":{"type":"cuda","gpus":[0]}})"
                          << "/parallel/pipeline_stages"
                          << "need 2 GPUs but device.gpus lists 1";
  }
  void profileParallelErrors() {
    QFETCH(QString, patch);
    QFETCH(QString, pointer);
    QFETCH(QString, message);
    json j = trainProfile();
    j.merge_patch(json::parse(patch.toStdString()));
    try {
      parseProfile(j, "pp.json", builtinStages());
      QFAIL("no error");
    } catch (const ProfileError& e) {
      QCOMPARE(QString::fromStdString(e.pointer()), pointer);
      QVERIFY2(QString::fromStdString(e.detail()).contains(message), e.what());
    }
  }
};

QTEST_APPLESS_MAIN(TestParallelPlan)
#include "test_parallel_plan.moc"
