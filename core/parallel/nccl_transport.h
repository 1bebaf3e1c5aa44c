// The NCCL CommBackend: pipeline sends and receives, the tied-embedding exchange, world
// sums and the data-parallel gradient all-reduce as raw NCCL calls on each rank's CUDA
// streams. Receives and collectives run on the rank's current (compute) stream; sends
// and the gradient all-reduce on side streams that wait for the data with an event, so
// a send never holds up the compute stream (with sends on the compute stream 1F1B
// deadlocks already at N = 2, M = 2, see timeline.h). Communicators are non-blocking
// (ncclConfig_t blocking = 0) and abort() calls ncclCommAbort, never ncclCommDestroy,
// so a stuck peer cannot hang a worker. Compiled only in CUDA builds with NCCL
// (WB_HAVE_NCCL); elsewhere requireNccl() says so.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/errors.h"
#include "core/parallel/rendezvous.h"
#include "core/parallel/transport.h"

namespace wb {

#ifdef WB_HAVE_NCCL
inline constexpr bool kHasNccl = true;
// "2.28.9": the NCCL library this process loaded.
std::string ncclVersionText();
// Communicators per run, created on one thread per local rank when the engine first
// needs them: one over the world (sums, tied exchange), two per neighbouring stage pair
// (activations one way, gradients the other, so the two directions never queue behind
// each other) and one per stage among its replicas. Unique ids go through
// `rendezvous` (in memory for one process, TCPStore across processes).
CommFactory ncclCommFactory(std::shared_ptr<Rendezvous> rendezvous, std::chrono::seconds timeout);
#else
inline constexpr bool kHasNccl = false;
#endif

// InputError naming `where` unless this build has NCCL.
inline void requireNccl(const std::string& where, const std::string& what) {
  if (!kHasNccl)
    throw InputError(where, what + " needs NCCL, which this build does not have (CPU LibTorch, or nccl.h not found)",
                     "build the `cuda` preset on a machine with NCCL (scripts/gpu-build), or use one device "
                     "(pipeline stages on the CPU run with the in-process transport)");
}

}  // namespace wb
