// Gradient buckets for all-reduce; see transport.h.
#include "core/parallel/transport.h"

namespace wb {

std::vector<std::vector<size_t>> bucketize(const std::vector<torch::Tensor>& params,
                                           int64_t bucketBytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t filled = 0;
  for (size_t i = params.size(); i-- > 0;) {
    const int64_t bytes = params[i].numel() * static_cast<int64_t>(params[i].element_size());
    if (buckets.empty() || (filled > 0 && filled + bytes > bucketBytes)) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(i);
    filled += bytes;
  }
  return buckets;
}

}  // namespace wb
