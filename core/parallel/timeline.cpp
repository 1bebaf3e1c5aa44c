// Pipeline timing accounting and the fake-clock simulator; see timeline.h.
#include "core/parallel/timeline.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "core/errors.h"

namespace wb {

std::vector<StageTiming> summarize(const std::vector<StageTimeline>& stages) {
  double window = 0.0;
  for (const auto& spans : stages)
    for (const auto& s : spans) window = std::max(window, s.end);
  std::vector<StageTiming> out(stages.size());
  for (size_t i = 0; i < stages.size(); ++i) {
    StageTiming& t = out[i];
    t.windowS = window;
    for (const auto& s : stages[i]) {
      const double d = s.end - s.start;
      if (s.kind == SpanKind::Forward) t.forwardS += d;
      if (s.kind == SpanKind::Backward) t.backwardS += d;
      if (s.kind == SpanKind::Comm) t.commS += d;
    }
    t.idleS = std::max(0.0, window - t.forwardS - t.backwardS - t.commS);
  }
  return out;
}

double measuredBubble(const std::vector<StageTiming>& stages) {
  if (stages.empty()) return 0.0;
  double sum = 0.0;
  for (const auto& t : stages) sum += t.bubble();
  return sum / static_cast<double>(stages.size());
}

std::vector<StageTimeline> simulate(ScheduleKind kind, int n, int64_t m, const FakeCosts& costs,
                                    SendMode mode) {
  if (costs.forward.size() != static_cast<size_t>(n) ||
      costs.backward.size() != static_cast<size_t>(n))
    throw InputError("pipeline simulator", "need one forward and one backward cost per stage");
  std::vector<std::vector<Instruction>> programs;
  for (int s = 0; s < n; ++s) programs.push_back(buildSchedule(kind, n, m, s));
  // (to stage, micro-batch, is gradient) -> time the message became available
  std::map<std::tuple<int, int64_t, bool>, double> mailbox;
  std::vector<size_t> pc(static_cast<size_t>(n), 0);
  std::vector<double> clock(static_cast<size_t>(n), 0.0);
  std::vector<StageTimeline> spans(static_cast<size_t>(n));
  for (bool progressed = true; progressed;) {
    progressed = false;
    for (int s = 0; s < n; ++s) {
      const auto si = static_cast<size_t>(s);
      while (pc[si] < programs[si].size()) {
        const Instruction in = programs[si][pc[si]];
        double& t = clock[si];
        const bool isSend = in.op == OpKind::SendActivation || in.op == OpKind::SendGradient;
        if (mode == SendMode::Rendezvous &&
            (isSend || in.op == OpKind::RecvActivation || in.op == OpKind::RecvGradient)) {
          // The sender completes both halves once the receiver stands at the matching
          // receive; a receiver just waits for that.
          if (!isSend) break;
          const bool grad = in.op == OpKind::SendGradient;
          const int peer = grad ? s - 1 : s + 1;
          const auto pi = static_cast<size_t>(peer);
          const Instruction want{grad ? OpKind::RecvGradient : OpKind::RecvActivation,
                                 in.microBatch};
          if (pc[pi] >= programs[pi].size() || !(programs[pi][pc[pi]] == want)) break;
          const double meet = std::max(t, clock[pi]);
          if (meet > t) spans[si].push_back({SpanKind::Wait, t, meet});
          if (meet > clock[pi]) spans[pi].push_back({SpanKind::Wait, clock[pi], meet});
          spans[si].push_back({SpanKind::Comm, meet, meet + costs.send});
          spans[pi].push_back({SpanKind::Wait, meet, meet + costs.send});
          t = clock[pi] = meet + costs.send;
          ++pc[pi];
        } else if (in.op == OpKind::RecvActivation || in.op == OpKind::RecvGradient) {
          auto it = mailbox.find({s, in.microBatch, in.op == OpKind::RecvGradient});
          if (it == mailbox.end()) break;  // not sent yet: try the other stages
          if (it->second > t) spans[si].push_back({SpanKind::Wait, t, it->second});
          t = std::max(t, it->second);
          mailbox.erase(it);
        } else if (in.op == OpKind::SendActivation || in.op == OpKind::SendGradient) {
          const bool grad = in.op == OpKind::SendGradient;
          spans[si].push_back({SpanKind::Comm, t, t + costs.send});
          t += costs.send;
          mailbox[{grad ? s - 1 : s + 1, in.microBatch, grad}] = t;
        } else {
          const bool fwd = in.op == OpKind::Forward;
          const double d = fwd ? costs.forward[si] : costs.backward[si];
          spans[si].push_back({fwd ? SpanKind::Forward : SpanKind::Backward, t, t + d});
          t += d;
        }
        ++pc[si];
        progressed = true;
      }
    }
  }
  std::string stuck;
  for (int s = 0; s < n; ++s)
    if (pc[static_cast<size_t>(s)] < programs[static_cast<size_t>(s)].size())
      stuck += " stage " + std::to_string(s) + " at instruction " +
               std::to_string(pc[static_cast<size_t>(s)]);
  if (!stuck.empty()) throw RunError("pipeline simulator", "schedule deadlocks:" + stuck);
  return spans;
}

}  // namespace wb
