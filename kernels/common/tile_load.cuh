// Cooperative global -> shared tile copy shared by the flash forward and backward
// kernels: a [ROWS, D] slice of 16-bit values goes through cp.async into a swizzled
// shared tile (swz<D>), rows past the valid range zero-filled. Issues the copies only;
// committing and waiting on the cp.async group is the caller's pipeline decision.
#pragma once

#include <cstdint>

#include "kernels/common/mma_sm80.cuh"

namespace wbk {

// Copies rows [row0, row0 + ROWS) of a [T, D] slice (row stride `rs` elements) into
// `s`; rows >= rowsValid are zero-filled so padded rows stay finite.
template <int ROWS, int D, int THREADS, typename T>
__device__ __forceinline__ void loadTile(T* s, const T* g, int64_t rs, int row0, int rowsValid, int tid) {
  constexpr int kChunksPerRow = D / 8;
  constexpr int kChunks = ROWS * kChunksPerRow;
#pragma unroll
  for (int c = tid; c < kChunks; c += THREADS) {
    const int r = c / kChunksPerRow, ch = c % kChunksPerRow;
    const bool valid = row0 + r < rowsValid;
    const T* src = valid ? g + (row0 + r) * rs + ch * 8 : g;
    cpAsync16(smemAddr(s + swz<D>(r, ch * 8)), src, valid);
  }
}

}  // namespace wbk
