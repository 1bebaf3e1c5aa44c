// Random training windows from a token array: x = tokens[o, o+T), y = tokens[o+1, o+T+1)
// — the next-token shift is made here, once. Offsets come from a counter-based hash of
// (seed, batch index, row), so the data cursor alone makes resume exact.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "core/torch_compat.h"

namespace wb {

class BatchSampler {
 public:
  // `source` names the token file in errors.
  BatchSampler(const uint16_t* tokens, int64_t count, int64_t seqLen, int64_t batchSize,
               uint64_t seed, std::string source);
  // int64 CPU tensors [batchSize, seqLen].
  std::pair<torch::Tensor, torch::Tensor> next();
  int64_t cursor() const { return cursor_; }
  void setCursor(int64_t cursor) { cursor_ = cursor; }

 private:
  const uint16_t* tokens_;
  int64_t count_, seqLen_, batchSize_;
  uint64_t seed_;
  int64_t cursor_ = 0;
};

uint64_t splitmix64(uint64_t x);

}  // namespace wb
