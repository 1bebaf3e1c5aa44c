// int4 weights (groups of 128) repacked for the decode step's row-tile kernels
// (kernels/decode, WbDecodeRowTiles: the LM head, and c_fc in the MLP block): 16 output
// rows a tensor-core tile, each lane's 32-bit word the A fragment of one mma.m16n8k16 in
// the order the nibble trick unpacks it; and the CPU reference of what those kernels
// compute from the repacked words, so the layout is checked without a GPU.
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace wb {

struct Int4RowTiles {
  int64_t rows = 0, inputs = 0;  // N, K
  torch::Tensor codes;   // int32 [tiles, K/64, 32 lanes, 4 k-steps]
  torch::Tensor scales;  // int32 [tiles, K/128, 8]: fp16 pair (row g, row g + 8) of the tile
  torch::Tensor zeros;   // int16 [tiles, K/128, 8]: byte pair (row g, row g + 8); undefined when symmetric
};

// packed: uint8 [N, K/2] (low nibble = even input), scales fp16 [N, K/128], zeros uint8
// [N, K/128] or undefined (symmetric, codes offset by 8): quantize.h's int4 layout, on any
// device (the result is on the same one). K must be a multiple of 128.
Int4RowTiles packInt4RowTiles(const torch::Tensor& packed, const torch::Tensor& scales, const torch::Tensor& zeros);

// What the kernel computes: fp32 [N] = the dequantized rows times x (fp32 [K], the values
// the kernel stages as fp16), read lane by lane from the repacked words as the kernel reads
// them. CPU; for tests.
torch::Tensor int4RowTilesReference(const Int4RowTiles& tiles, const torch::Tensor& x);

}  // namespace wb
