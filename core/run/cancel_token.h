// A flag shared between the thread that runs stages and whoever may stop them.
// Stages poll it at every micro-batch; it never interrupts anything by itself.
#pragma once

#include <atomic>

#include "core/errors.h"

namespace wb {

class CancelToken {
 public:
  void cancel() { flag_.store(true, std::memory_order_relaxed); }
  void reset() { flag_.store(false, std::memory_order_relaxed); }
  bool cancelled() const { return flag_.load(std::memory_order_relaxed); }
  void throwIfCancelled() const {
    if (cancelled()) throw Cancelled();
  }

 private:
  std::atomic<bool> flag_{false};
};

}  // namespace wb
