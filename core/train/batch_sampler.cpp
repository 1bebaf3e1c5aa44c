// Seeded random windows; see batch_sampler.h.
#include "core/train/batch_sampler.h"

#include "core/errors.h"

namespace wb {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

BatchSampler::BatchSampler(const uint16_t* tokens, int64_t count, int64_t seqLen,
                           int64_t batchSize, uint64_t seed, std::string source)
    : tokens_(tokens), count_(count), seqLen_(seqLen), batchSize_(batchSize), seed_(seed) {
  if (count_ < seqLen_ + 2)
    throw InputError(source, "holds " + std::to_string(count_) + " tokens; a training window of seq_len " +
                                 std::to_string(seqLen_) + " needs at least " + std::to_string(seqLen_ + 2),
                     "use more text or a smaller data.seq_len");
}

std::pair<torch::Tensor, torch::Tensor> BatchSampler::next() {
  auto x = torch::empty({batchSize_, seqLen_}, torch::kLong);
  auto y = torch::empty({batchSize_, seqLen_}, torch::kLong);
  auto* px = x.data_ptr<int64_t>();
  auto* py = y.data_ptr<int64_t>();
  const auto span = static_cast<uint64_t>(count_ - seqLen_);  // offsets 0 .. count-T-1
  for (int64_t r = 0; r < batchSize_; ++r) {
    const uint64_t h = splitmix64(seed_ ^ splitmix64(static_cast<uint64_t>(cursor_ * batchSize_ + r)));
    const int64_t o = static_cast<int64_t>(h % span);
    for (int64_t t = 0; t < seqLen_; ++t) {
      px[r * seqLen_ + t] = tokens_[o + t];
      py[r * seqLen_ + t] = tokens_[o + t + 1];
    }
  }
  ++cursor_;
  return {x, y};
}

}  // namespace wb
