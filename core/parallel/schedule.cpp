// GPipe and 1F1B instruction lists; see schedule.h.
#include "core/parallel/schedule.h"

#include <algorithm>

#include "core/errors.h"

namespace wb {

ScheduleKind parseScheduleKind(const std::string& name, const std::string& where) {
  if (name == "gpipe") return ScheduleKind::GPipe;
  if (name == "1f1b") return ScheduleKind::OneFOneB;
  throw InputError(where, "unknown pipeline schedule \"" + name + "\"",
                   "use \"gpipe\" or \"1f1b\"");
}

const char* toString(ScheduleKind kind) {
  return kind == ScheduleKind::GPipe ? "gpipe" : "1f1b";
}

const char* toString(OpKind kind) {
  switch (kind) {
    case OpKind::RecvActivation:
      return "recv_act";
    case OpKind::Forward:
      return "forward";
    case OpKind::SendActivation:
      return "send_act";
    case OpKind::RecvGradient:
      return "recv_grad";
    case OpKind::Backward:
      return "backward";
    case OpKind::SendGradient:
      return "send_grad";
  }
  return "?";
}

namespace {

// A forward step with the receive before it and the send after it, where they exist.
void addForward(std::vector<Instruction>& p, int stages, int stage, int64_t mb) {
  if (stage > 0) p.push_back({OpKind::RecvActivation, mb});
  p.push_back({OpKind::Forward, mb});
  if (stage < stages - 1) p.push_back({OpKind::SendActivation, mb});
}

void addBackward(std::vector<Instruction>& p, int stages, int stage, int64_t mb) {
  if (stage < stages - 1) p.push_back({OpKind::RecvGradient, mb});
  p.push_back({OpKind::Backward, mb});
  if (stage > 0) p.push_back({OpKind::SendGradient, mb});
}

}  // namespace

std::vector<Instruction> buildSchedule(ScheduleKind kind, int stages, int64_t m, int stage) {
  if (stages < 1 || stage < 0 || stage >= stages || m < 1)
    throw InputError("pipeline schedule", "invalid stage " + std::to_string(stage) + " of " +
                                              std::to_string(stages) + " with " +
                                              std::to_string(m) + " micro-batches");
  std::vector<Instruction> p;
  if (kind == ScheduleKind::GPipe) {
    // All forwards, then all backwards: every micro-batch's activations are live at
    // the turn, which is what 1F1B avoids.
    for (int64_t mb = 0; mb < m; ++mb) addForward(p, stages, stage, mb);
    for (int64_t mb = 0; mb < m; ++mb) addBackward(p, stages, stage, mb);
    return p;
  }
  // 1F1B: stage s runs N - s - 1 warm-up forwards (the depth still to be filled below
  // it), then alternates one forward with one backward, then drains the backwards it
  // still owes. At most N - s activations are ever held.
  const int64_t warmup = std::min<int64_t>(stages - stage - 1, m);
  int64_t nextForward = 0, nextBackward = 0;
  for (; nextForward < warmup; ++nextForward) addForward(p, stages, stage, nextForward);
  for (; nextForward < m; ++nextForward, ++nextBackward) {
    addForward(p, stages, stage, nextForward);
    addBackward(p, stages, stage, nextBackward);
  }
  for (; nextBackward < m; ++nextBackward) addBackward(p, stages, stage, nextBackward);
  return p;
}

int64_t peakInFlight(const std::vector<Instruction>& program) {
  int64_t live = 0, peak = 0;
  for (const auto& in : program) {
    if (in.op == OpKind::Forward) peak = std::max(peak, ++live);
    if (in.op == OpKind::Backward) --live;
  }
  return peak;
}

double theoreticalBubble(int stages, int64_t m) {
  return static_cast<double>(stages - 1) / static_cast<double>(m + stages - 1);
}

std::string describe(const std::vector<Instruction>& program) {
  std::string s;
  for (const auto& in : program) {
    static const char* kShort[] = {"Ra", "F", "Sa", "Rg", "B", "Sg"};
    if (!s.empty()) s += ' ';
    s += kShort[static_cast<int>(in.op)] + std::to_string(in.microBatch);
  }
  return s;
}

}  // namespace wb
