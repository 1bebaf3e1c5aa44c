// Where the row-tile kernels (decode_lm_head_tiles.cuh: the LM head, c_fc in the MLP
// block) find each int4 code: plain C++ shared by the packer in core
// (core/model/int4_row_tiles.cpp) and the micro-benchmarks that pack their own weights.
// A tile is 16 rows; lane l = 4g + c of a warp holds rows g and g + 8, and its 32-bit word
// for k-step j (0..3) of chunk a (64 inputs, one 16-byte load a lane) has nibble i =
// code[row][input] for the row and input below. Why this order: core/model/int4_row_tiles.cpp.
#pragma once

#include <cstdint>

namespace wbk {

constexpr int64_t kRowTileRows = 16, kRowTileChunkInputs = 64;

// The row within the tile of nibble i of lane `lane`'s words: lop3 unpacks (n0, n4) and
// (n2, n6) for row g, (n1, n5) and (n3, n7) for row g + 8.
constexpr int64_t rowTileRow(int64_t lane, int64_t i) { return lane / 4 + 8 * (i & 1); }

// The input of that nibble: lane c reads chunk kc = 16 G + 4 c + t of the staged x (group
// G = a / 2, pair step t = (a % 2) * 2 + j / 2), pairs (x0, x4), (x1, x5) at an even k-step
// and (x2, x6), (x3, x7) at an odd one.
constexpr int64_t rowTileInput(int64_t a, int64_t lane, int64_t j, int64_t i) {
  const int64_t c = lane % 4, group = a / 2, t = (a % 2) * 2 + j / 2, odd = j & 1;
  const int64_t kc = 16 * group + 4 * c + t;
  const int64_t base = (i >> 1) == 0 ? 0 : (i >> 1) == 1 ? 1 : (i >> 1) == 2 ? 4 : 5;
  return 8 * kc + base + 2 * odd;
}

}  // namespace wbk
