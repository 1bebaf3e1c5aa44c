#!/usr/bin/env python3
# Writes /tmp/v<name>/kernels/decode/decode_attention_block.cu for each variant of the
# attention block's shared-memory footprint (docs/PERF.md, "Local q, shared memory and the
# carveout": 34 KB more cost 5.2 us a layer), or only those named in argv; prints their
# names. Build one with
#   nvcc -O3 -std=c++17 -arch=sm_90a --expt-relaxed-constexpr -I/tmp/v<name> -I. \
#       '-DMC_BLOCK_SRC="/tmp/v<name>/kernels/decode/decode_attention_block.cu"' \
#       scripts/microbench/decode_block_layer_chain.cu -o /tmp/blc_<name>
# and run it in mode mlpblock, with WB_CHAIN_CARVEOUT=28 / 44 / 58 to ask whether the
# cost follows the split's size (a threshold) or the bytes (e.g. a contiguous free range).
# Variants: extra<N>: N KB of unused dynamic shared memory; nosx: the HEADS input's int4
# staging without the fp32 x it never writes (4 KB less at E = 1024). Run from the
# repository root.
import sys

sys.path.insert(0, 'scripts/microbench')
from source_patch import SourcePatch

SRC = 'kernels/decode/decode_attention_block.cu'
KEYS = '         static_cast<size_t>(tiles) * kTileKeys * 2 * kHeadDim * sizeof(__half);'


def extra(kb):
    def patch(p):
        p.rep(KEYS, KEYS[:-1] + f' + {kb} * 1024;')
    return patch


def nosx(p):
    p.rep('  uint4* sxq = reinterpret_cast<uint4*>(sx + e);',
          '  uint4* sxq = reinterpret_cast<uint4*>(sx + (kIn == WB_DECODE_IN_HEADS && kInt4 ? 0 : e));')
    p.rep('  const size_t smem = blockDynamicBytes(p.k, p.capacity, kInt4);',
          '  const size_t smem = blockDynamicBytes(p.k, p.capacity, kInt4) - (kIn == WB_DECODE_IN_HEADS && kInt4 ? 4 * p.k : 0);')


VARIANTS = {'extra8': extra(8), 'extra16': extra(16), 'extra24': extra(24), 'extra34': extra(34), 'nosx': nosx}

for name in sys.argv[1:] or VARIANTS:
    p = SourcePatch(SRC)
    VARIANTS[name](p)
    p.write(f'/tmp/v{name}/{SRC}')
    print(name)
