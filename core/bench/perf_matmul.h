// `gpt2-bench perf matmul`: the dense GEMM rate this card and LibTorch reach (bf16 on
// CUDA by default), the measured peak that MFU figures divide by. Square n x n x n
// products timed one by one with CUDA events after warm-up, rotating among several
// input sets so repeats do not run out of L2. Torch-free header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/bench/perf_report.h"

namespace wb {

struct MatmulPerfOptions {
  std::string device = "cuda";
  std::string dtype = "bf16";  // fp32, bf16, fp16
  std::vector<int64_t> sizes{4096, 8192, 16384};
  int64_t warmup = 10, repeats = 50;
  int64_t inputSets = 3;
  std::string command;
};

// One row per size (tflops and ms, mean ± std over repeats); summary.peak_tflops is the
// best size's median rate.
PerfResult runMatmulPerf(const MatmulPerfOptions& options);

}  // namespace wb
