// glibc malloc tunables for tensor-heavy processes; see allocator_tuning.h for the why.
#include "core/allocator_tuning.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <unistd.h>
#endif

namespace wb {

void tuneAllocatorForTensors(char** argv) {
#if defined(__GLIBC__)
  const char* mode = std::getenv("WB_MALLOC_TUNING");
  if (mode != nullptr) return;  // "0" opts out; any other value means: already re-executed
  // Only fill in what the user has not chosen; overwrite = 0 keeps their values.
  setenv("MALLOC_MMAP_THRESHOLD_", "1073741824", 0);  // blocks < 1 GiB come from the heap
  setenv("MALLOC_TRIM_THRESHOLD_", "4294967296", 0);  // keep up to 4 GiB of freed heap
  setenv("MALLOC_TOP_PAD_", "268435456", 0);
  setenv("WB_MALLOC_TUNING", "1", 1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc, seccomp...): run untuned rather than not at all.
#else
  (void)argv;
#endif
}

}  // namespace wb
