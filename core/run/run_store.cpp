// The append-only run directory; see run_store.h.
#include "core/run/run_store.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "core/bench/stats_json.h"
#include "core/io/atomic_file.h"

namespace wb {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double epochSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string utcStamp(const char* format) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

std::string hostName() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string csvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

json RunSummary::toJson() const {
  json j;
  j["name"] = name;
  j["status"] = wb::toString(status);
  j["message"] = message;
  j["duration_s"] = durationSeconds;
  j["started_utc"] = startedUtc;
  j["stages"] = stages;
  j["series"] = json::array();
  for (const auto& s : series) {
    json row = statsJson(s.stats);
    row["stage"] = s.stage;
    row["series"] = s.series;
    row["last"] = s.last;
    row["last_step"] = s.lastStep;
    j["series"].push_back(std::move(row));
  }
  return j;
}

RunSummary RunSummary::fromJson(const json& j) {
  RunSummary r;
  r.name = j.value("name", "");
  r.status = runStatusFromString(j.value("status", "interrupted"));
  r.message = j.value("message", "");
  r.durationSeconds = j.value("duration_s", 0.0);
  r.startedUtc = j.value("started_utc", "");
  r.stages = j.value("stages", std::vector<std::string>{});
  for (const auto& s : j.value("series", json::array())) {
    SeriesSummary ss;
    ss.stage = s.value("stage", "");
    ss.series = s.value("series", "");
    ss.stats = statsFromJson(s);
    ss.last = s.value("last", 0.0);
    ss.lastStep = s.value("last_step", int64_t{0});
    r.series.push_back(ss);
  }
  return r;
}

fs::path RunStore::createRunDir(const fs::path& root, const std::string& profileName) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec)
    throw RunError(root.string(), "cannot create the runs directory: " + ec.message(),
                   "set --runs-dir or WB_RUNS_DIR to a writable folder");
  const std::string base = utcStamp("%Y%m%dT%H%M%SZ") + "-" + profileName;
  for (int i = 1; i < 1000; ++i) {
    fs::path dir = root / (i == 1 ? base : base + "-" + std::to_string(i));
    // create_directory reports false when it already exists: that makes the name ours.
    if (fs::create_directory(dir, ec)) return dir;
    if (ec) throw RunError(dir.string(), "cannot create the run directory: " + ec.message());
  }
  throw RunError(root.string(), "too many runs with the same name in the same second");
}

RunStore::RunStore(fs::path dir, const Profile& profile) : dir_(std::move(dir)), name_(profile.name) {
  fs::create_directories(dir_ / "checkpoints");
  writeFileAtomic(dir_ / "profile.json", toJson(profile).dump(2) + "\n");
  events_ = std::fopen((dir_ / "events.jsonl").c_str(), "ab");
  metrics_ = std::fopen((dir_ / "metrics.csv").c_str(), "ab");
  if (!events_ || !metrics_) throw RunError(dir_.string(), "cannot open events.jsonl/metrics.csv");
  if (std::ftell(metrics_) == 0) std::fputs("wall_time,step,series,value,stage\n", metrics_);
  std::fflush(metrics_);
  startEpoch_ = epochSeconds();
}

RunStore::~RunStore() {
  if (events_) std::fclose(events_);
  if (metrics_) std::fclose(metrics_);
}

double RunStore::now() const { return epochSeconds() - startEpoch_; }

void RunStore::append(const json& event) {
  const std::string line = event.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), events_);
  // Flushed per event so that a killed process loses at most the line in flight.
  std::fflush(events_);
  summary_.add(event["event"].get<std::string>(), event);
}

void RunStore::onRunStart(const std::string& runDir) {
  std::lock_guard lock(mutex_);
  append({{"event", "run_start"},
          {"t", 0.0},
          {"name", name_},
          {"dir", runDir},
          {"started_utc", utcStamp("%Y-%m-%dT%H:%M:%SZ")},
          {"wall_time", startEpoch_},
          {"pid", static_cast<int64_t>(getpid())},
          {"host", hostName()}});
}

void RunStore::onStageStart(int index, const std::string& type, const std::string& name) {
  std::lock_guard lock(mutex_);
  append({{"event", "stage_start"}, {"t", now()}, {"index", index}, {"type", type}, {"stage", name}});
}

void RunStore::onSample(const MetricSample& s) {
  std::lock_guard lock(mutex_);
  append({{"event", "sample"},
          {"t", s.tSeconds},
          {"stage", s.stage},
          {"series", s.series},
          {"step", s.step},
          {"value", s.value}});
  std::fprintf(metrics_, "%.6f,%lld,%s,%.17g,%s\n", startEpoch_ + s.tSeconds,
               static_cast<long long>(s.step), csvField(s.series).c_str(), s.value,
               csvField(s.stage).c_str());
  std::fflush(metrics_);
}

void RunStore::onLog(const LogLine& line) {
  std::lock_guard lock(mutex_);
  append({{"event", "log"},
          {"t", line.tSeconds},
          {"stage", line.stage},
          {"level", toString(line.level)},
          {"text", line.text}});
}

void RunStore::onStageEnd(int index, const std::string& name, RunStatus status) {
  std::lock_guard lock(mutex_);
  append({{"event", "stage_end"},
          {"t", now()},
          {"index", index},
          {"stage", name},
          {"status", toString(status)}});
}

void RunStore::onRunEnd(RunStatus status, const std::string& message) {
  std::lock_guard lock(mutex_);
  append({{"event", "run_end"}, {"t", now()}, {"status", toString(status)}, {"message", message}});
  const RunSummary summary = summary_.build();
  writeFileAtomic(dir_ / "summary.json", summary.toJson().dump(2) + "\n");
}

std::vector<RunEvent> RunStore::readEvents(const fs::path& dir) {
  std::vector<RunEvent> out;
  std::ifstream in(dir / "events.jsonl", std::ios::binary);
  if (!in) throw InputError((dir / "events.jsonl").string(), "cannot open the run's event log");
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline: a torn last line from a killed writer
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("event")) break;
    out.push_back({j["event"].get<std::string>(), std::move(j)});
  }
  return out;
}

void SummaryBuilder::add(const std::string& kind, const json& d) {
  base_.durationSeconds = std::max(base_.durationSeconds, d.value("t", 0.0));
  if (kind == "run_start") {
    base_.name = d.value("name", "");
    base_.startedUtc = d.value("started_utc", "");
    pid_ = d.value("pid", int64_t{0});
    host_ = d.value("host", "");
  } else if (kind == "stage_start") {
    base_.stages.push_back(d.value("stage", ""));
  } else if (kind == "sample") {
    auto key = std::make_pair(d.value("stage", ""), d.value("series", ""));
    auto& v = values_[key];
    if (v.empty()) order_.push_back(key);
    v.push_back(d.value("value", 0.0));
    lastStep_[key] = d.value("step", int64_t{0});
  } else if (kind == "run_end") {
    base_.status = runStatusFromString(d.value("status", "interrupted"));
    base_.message = d.value("message", "");
  }
}

RunSummary SummaryBuilder::build() const {
  RunSummary r = base_;
  // A run without its end event may still be running in another process here.
  if (r.status == RunStatus::Interrupted && pid_ > 0 && host_ == hostName() &&
      ::kill(static_cast<pid_t>(pid_), 0) == 0)
    r.status = RunStatus::Running;
  for (const auto& key : order_) {
    const auto& v = values_.at(key);
    SeriesSummary s;
    s.stage = key.first;
    s.series = key.second;
    s.stats = summarize(v);
    s.last = v.back();
    s.lastStep = lastStep_.at(key);
    r.series.push_back(s);
  }
  return r;
}

RunSummary RunStore::summarizeEvents(const std::vector<RunEvent>& events) {
  SummaryBuilder b;
  for (const auto& e : events) b.add(e.kind, e.data);
  return b.build();
}

RunSummary RunStore::loadSummary(const fs::path& dir) {
  std::ifstream in(dir / "summary.json", std::ios::binary);
  if (in) {
    json j = json::parse(in, nullptr, false);
    if (!j.is_discarded() && j.is_object()) return RunSummary::fromJson(j);
  }
  return summarizeEvents(readEvents(dir));
}

std::vector<fs::path> RunStore::listRuns(const fs::path& root) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory() && fs::exists(entry.path() / "events.jsonl")) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() > b.filename().string();
  });
  return out;
}

}  // namespace wb
