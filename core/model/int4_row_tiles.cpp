// Row-tile repacking of int4 weights and its CPU reference; see int4_row_tiles.h.
//
// The kernel (kernels/decode/decode_lm_head_tiles.cuh) runs one mma.m16n8k16 per 16 inputs
// of a tile of 16 rows, with x in every column of B, so each lane ends with whole dot
// products and nothing is summed over the warp. Lane l = 4g + c holds rows g and g + 8.
// Its word for k-step S (chunk a = S / 4, step j = S % 4 of the lane's 16-byte load) has
// nibble i = code[row g + 8 (i & 1)][input], so that lop3 unpacks (n0, n4), (n1, n5),
// (n2, n6), (n3, n7) as A fragments a0..a3. Which inputs: B comes from the staged x in
// the int4 order of decode_device.cuh (chunk kc of 8 inputs as pairs (x0,x4), (x1,x5),
// (x2,x6), (x3,x7)); in group G lane c reads chunk kc = 16 G + 4 c + t at pair step
// t = S % 8 / 2, the even k-step taking its first two pairs and the odd one the last two,
// so the four lanes c read four adjacent 16-byte slots (no bank conflicts). The mapping
// itself is kernels/decode/decode_row_tiles_layout.h, which the micro-benchmarks share.
#include "core/model/int4_row_tiles.h"

#include <algorithm>
#include <array>
#include <vector>

#include "core/errors.h"
#include "kernels/decode/decode_row_tiles_layout.h"

namespace wb {

namespace {

constexpr const char* kTilesWhere = "int4 row tiles";
constexpr int64_t kTileRows = wbk::kRowTileRows, kGroup = 128, kChunkInputs = wbk::kRowTileChunkInputs, kSliceTiles = 64;

}  // namespace

Int4RowTiles packInt4RowTiles(const torch::Tensor& packed, const torch::Tensor& scales, const torch::Tensor& zeros) {
  if (packed.dim() != 2 || packed.scalar_type() != torch::kUInt8)
    throw InputError(kTilesWhere, "packed codes must be uint8 [rows, inputs / 2]");
  const int64_t n = packed.size(0), k = 2 * packed.size(1);
  if (k % kGroup != 0) throw InputError(kTilesWhere, "inputs (" + std::to_string(k) + ") must be a multiple of 128");
  if (scales.dim() != 2 || scales.size(0) != n || scales.size(1) != k / kGroup || scales.scalar_type() != torch::kHalf)
    throw InputError(kTilesWhere, "scales must be fp16 [rows, inputs / 128] (groups of 128)");
  if (zeros.defined() && (zeros.sizes() != scales.sizes() || zeros.scalar_type() != torch::kUInt8))
    throw InputError(kTilesWhere, "zeros must be uint8 of the scales' shape");
  const auto dev = packed.device();
  const int64_t tiles = (n + kTileRows - 1) / kTileRows, chunks = k / kChunkInputs, groups = k / kGroup;
  const int64_t padRows = tiles * kTileRows - n;

  // codes [tiles, 16, K], zero-padded rows (their scales are 0 too: outputs 0 past N).
  const auto lo = torch::bitwise_and(packed, 15), hi = torch::bitwise_right_shift(packed, 4);
  auto codes = torch::stack({lo, hi}, -1).reshape({n, k});
  if (padRows > 0) codes = torch::cat({codes, torch::zeros({padRows, k}, codes.options())});
  codes = codes.view({tiles, kTileRows, k});

  // Where each nibble comes from, [chunks, 32, 4, 8], and its shift.
  auto rowIdx = torch::empty({chunks, 32, 4, 8}, torch::kLong), inIdx = torch::empty_like(rowIdx);
  auto* r = rowIdx.data_ptr<int64_t>();
  auto* in = inIdx.data_ptr<int64_t>();
  for (int64_t a = 0, at = 0; a < chunks; ++a)
    for (int64_t lane = 0; lane < 32; ++lane)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t i = 0; i < 8; ++i, ++at) r[at] = wbk::rowTileRow(lane, i), in[at] = wbk::rowTileInput(a, lane, j, i);
  rowIdx = rowIdx.to(dev);
  inIdx = inIdx.to(dev);
  const auto shifts = (torch::arange(8, torch::TensorOptions().dtype(torch::kLong)) * 4).to(dev);

  Int4RowTiles t;
  t.rows = n;
  t.inputs = k;
  t.codes = torch::empty({tiles, chunks, 32, 4}, torch::TensorOptions().dtype(torch::kInt32).device(dev));
  using torch::indexing::Slice;
  for (int64_t t0 = 0; t0 < tiles; t0 += kSliceTiles) {  // slices: the int64 nibbles of all tiles would be 8 B a code
    const int64_t len = std::min(kSliceTiles, tiles - t0);
    const auto nib = codes.narrow(0, t0, len).index({Slice(), rowIdx, inIdx}).to(torch::kLong);
    t.codes.narrow(0, t0, len).copy_(torch::bitwise_left_shift(nib, shifts).sum(-1).to(torch::kInt32));
  }

  // Per tile and group, the pair (row g, row g + 8) of each of the 8 lanes' rows.
  auto pairs = [&](const torch::Tensor& perRow) {  // [n, groups] -> [tiles, groups, 8, 2]
    auto v = perRow;
    if (padRows > 0) v = torch::cat({v, torch::zeros({padRows, groups}, v.options())});
    return v.view({tiles, 2, 8, groups}).permute({0, 3, 2, 1}).contiguous();
  };
  t.scales = pairs(scales).view(torch::kInt32).view({tiles, groups, 8});
  if (zeros.defined()) t.zeros = pairs(zeros).view(torch::kInt16).view({tiles, groups, 8});
  return t;
}

torch::Tensor int4RowTilesReference(const Int4RowTiles& t, const torch::Tensor& x) {
  const int64_t n = t.rows, k = t.inputs;
  if (x.dim() != 1 || x.size(0) != k) throw InputError(kTilesWhere, "x must be [inputs]");
  const auto codes = t.codes.to(torch::kCPU).contiguous();
  const auto scales = t.scales.to(torch::kCPU).contiguous();
  const auto zeros = t.zeros.defined() ? t.zeros.to(torch::kCPU).contiguous() : torch::Tensor();
  const auto xs = x.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t tiles = codes.size(0), chunks = k / kChunkInputs, groups = k / kGroup, chunks32 = k / 32;
  const auto* w = reinterpret_cast<const uint32_t*>(codes.data_ptr<int32_t>());
  const auto* s = reinterpret_cast<const uint16_t*>(scales.data_ptr<int32_t>());  // fp16 bits, (row g, row g + 8)
  const auto* z = zeros.defined() ? reinterpret_cast<const uint8_t*>(zeros.data_ptr<int16_t>()) : nullptr;
  // x staged as the kernels stage it for int4 (decode_device.cuh): slot (kc % 4) * K/32 +
  // kc / 4 holds chunk kc's pairs (x0, x4), (x1, x5), (x2, x6), (x3, x7).
  const float* xv = xs.data_ptr<float>();
  std::vector<std::array<float, 8>> staged(static_cast<size_t>(k / 8));
  for (int64_t kc = 0; kc < k / 8; ++kc) {
    auto& v = staged[static_cast<size_t>((kc % 4) * chunks32 + kc / 4)];
    for (int e = 0; e < 4; ++e) v[2 * e] = xv[8 * kc + e], v[2 * e + 1] = xv[8 * kc + e + 4];
  }
  auto out = torch::zeros({n}, torch::kFloat32);
  float* o = out.data_ptr<float>();
  for (int64_t tile = 0; tile < tiles; ++tile)
    for (int64_t g = 0; g < 8; ++g)
      for (int64_t half = 0; half < 2; ++half) {  // row g (A fragments a0, a2), then row g + 8 (a1, a3)
        const int64_t row = tile * kTileRows + g + 8 * half;
        if (row >= n) continue;
        double total = 0;
        for (int64_t grp = 0; grp < groups; ++grp) {
          const int64_t pair = (tile * groups + grp) * 8 + g;
          const float scale = static_cast<float>(c10::Half(s[2 * pair + half], c10::Half::from_bits()));
          const int zero = z ? z[2 * pair + half] : 8;
          auto nib = [&](uint32_t word, int i) { return static_cast<int>((word >> (4 * i)) & 15u) - zero; };
          double acc = 0;
          for (int64_t a = 2 * grp; a < 2 * grp + 2; ++a)
            for (int64_t c = 0; c < 4; ++c)
              for (int64_t j = 0; j < 4; ++j) {
                // Lane (g, c)'s B fragments: its slot's first two pairs at an even k-step, the last two at an odd one.
                const auto& v = staged[static_cast<size_t>(((a % 2) * 2 + j / 2) * chunks32 + 4 * grp + c)];
                const int64_t b = (j & 1) * 4;
                const uint32_t word = w[((tile * chunks + a) * 32 + 4 * g + c) * 4 + j];
                const int h = static_cast<int>(half);
                acc += nib(word, h) * static_cast<double>(v[b]) + nib(word, 4 + h) * static_cast<double>(v[b + 1]) +
                       nib(word, 2 + h) * static_cast<double>(v[b + 2]) + nib(word, 6 + h) * static_cast<double>(v[b + 3]);
              }
          total += scale * acc;
        }
        o[row] = static_cast<float>(total);
      }
  return out;
}

}  // namespace wb
