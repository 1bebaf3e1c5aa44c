// Pipeline schedules as explicit per-stage instruction lists (GPipe and 1F1B, a.k.a.
// PipeDream-flush): what each stage does, in order, for one pass over M micro-batches.
// Pure data, no tensors: the executor (pipeline_engine.h) and the timing simulator
// (timeline.h) both walk these lists, and tests check their properties on their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wb {

enum class ScheduleKind { GPipe, OneFOneB };

// "gpipe" | "1f1b"; InputError naming `where` otherwise.
ScheduleKind parseScheduleKind(const std::string& name, const std::string& where);
const char* toString(ScheduleKind kind);

enum class OpKind { RecvActivation, Forward, SendActivation, RecvGradient, Backward, SendGradient };
const char* toString(OpKind kind);

struct Instruction {
  OpKind op;
  int64_t microBatch;
  bool operator==(const Instruction&) const = default;
};

// Stage `stage` (0-based) of `stages`: the first stage never receives activations nor
// sends gradients, the last never sends activations nor receives gradients (its
// Forward ends in the loss, its Backward starts from it).
std::vector<Instruction> buildSchedule(ScheduleKind kind, int stages, int64_t microBatches,
                                       int stage);

// The largest number of micro-batches whose activations a stage holds at once
// (forwarded, not yet backwarded): M for GPipe, at most stages - stage for 1F1B.
int64_t peakInFlight(const std::vector<Instruction>& program);

// (N - 1) / (M + N - 1): the idle share of every stage when all forward (and all
// backward) steps take equal time and communication is free.
double theoreticalBubble(int stages, int64_t microBatches);

std::string describe(const std::vector<Instruction>& program);  // "F0 S0 F1 ..." for messages

}  // namespace wb
