// Where each pipeline stage's time went during one pass: spans of forward, backward,
// communication and waiting, summarised into per-stage totals and the measured bubble
// (idle share of the pass). The same accounting serves the real executor (steady_clock
// spans) and simulate(), which runs a schedule on a fake clock so the accounting can be
// checked against (N-1)/(M+N-1) exactly. Not here: emitting metrics (pipeline_trainer).
#pragma once

#include <vector>

#include "core/parallel/schedule.h"

namespace wb {

enum class SpanKind { Forward, Backward, Comm, Wait };

struct Span {
  SpanKind kind;
  double start = 0.0, end = 0.0;  // seconds since the pass started
};

using StageTimeline = std::vector<Span>;

struct StageTiming {
  double forwardS = 0.0, backwardS = 0.0, commS = 0.0;
  // The pass's window minus this stage's compute and communication: blocked in a
  // receive, or done early while other stages still work. Both are the bubble.
  double idleS = 0.0;
  double windowS = 0.0;  // the whole pass, the same for every stage
  double bubble() const { return windowS > 0 ? idleS / windowS : 0.0; }
};

// The window is [0, the latest span end over all stages].
std::vector<StageTiming> summarize(const std::vector<StageTimeline>& stages);
// Mean of the stages' idle shares.
double measuredBubble(const std::vector<StageTiming>& stages);

// Durations on the fake clock: per stage forward and backward time of one
// micro-batch, and the cost of issuing one send.
struct FakeCosts {
  std::vector<double> forward, backward;  // one per stage
  double send = 0.0;
};

// Buffered: a send never waits for its receive (the in-process transport; NCCL with
// sends on their own stream). Rendezvous: a send completes only together with the
// matching receive (a blocking ncclSend on the compute stream).
enum class SendMode { Buffered, Rendezvous };

// Runs the schedule on a fake clock. Throws RunError naming the stuck stages if the
// programs deadlock (1F1B does under rendezvous sends: the NCCL transport must not
// make a send wait for its receive).
std::vector<StageTimeline> simulate(ScheduleKind kind, int stages, int64_t microBatches,
                                    const FakeCosts& costs, SendMode mode = SendMode::Buffered);

}  // namespace wb
