#!/usr/bin/env python3
# Writes /tmp/v<name>/kernels/decode/decode_device.cuh for timing-only variants of the
# one-pass LayerNorm staging that every int4 decode kernel behind a LayerNorm runs (the
# attention block, the MLP block, ln_f + the LM head), or only those named in argv; prints
# their names. Build the layer chain against one with
#   nvcc -O3 -std=c++17 -arch=sm_90a --expt-relaxed-constexpr -I/tmp/v<name> -I. \
#       scripts/microbench/decode_block_layer_chain.cu -o /tmp/blc_<name>
# (the decode sources include the copy through -I) and run it in mode mlpblock.
# Variants: nostats: no block-wide statistics — each warp normalises with its own sums
# scaled to the block, so the barrier and the sum over the warps before the products go
# (wrong values: the one-layer check then differs). What that saves bounds what folding
# the LayerNorm into the int4 GEMVs' epilogues (as fp16 does, lnFolded) could save.
import sys

sys.path.insert(0, 'scripts/microbench')
from source_patch import SourcePatch

SRC = 'kernels/decode/decode_device.cuh'


def nostats(p):
    p.rep('''  if (lane == 0) scratch[2 * warp] = sum, scratch[2 * warp + 1] = squares;
  __syncthreads();
  sum = squares = 0.f;
  for (int w = 0; w < threads / 32; ++w) sum += scratch[2 * w], squares += scratch[2 * w + 1];
  const float mean = sum / static_cast<float>(k);''', '''  sum *= static_cast<float>(threads / 32), squares *= static_cast<float>(threads / 32);
  (void)warp, (void)lane;
  const float mean = sum / static_cast<float>(k);''')


VARIANTS = {'nostats': nostats}

for name in sys.argv[1:] or VARIANTS:
    p = SourcePatch(SRC)
    VARIANTS[name](p)
    p.write(f'/tmp/v{name}/{SRC}')
    print(name)
