#!/usr/bin/env python3
# Writes /tmp/v<name>/kernels/decode/{decode_mlp_block.cu,decode.h} for each variant of the
# MLP block's sum (docs/PERF.md, "One launch for the MLP" and "Local q, shared memory and
# the carveout"), or only those named in argv; prints their names. The MLP block is
# launched in clusters of 8; each block pushes its 1024 partial outputs into the owner
# block's shared memory (warp w's 128 outputs belong to rank w), one cluster barrier
# orders them, and each owner adds its 128 outputs over the 8 slots and makes one float4
# atomic per four outputs: 16 writers an address instead of 32 a copy.
#   cluster1: one sum (WB_DECODE_MLP_SUMS 1: the consumers read one vector, not four);
#   cluster4: four copies, cluster c adding into copy c % 4 (4 writers an address).
# Build one with the layer chain (the copies shadow the tree's headers):
#   nvcc -O3 -std=c++17 -arch=sm_90a --expt-relaxed-constexpr -I/tmp/v<name> -I. \
#       scripts/microbench/decode_block_layer_chain.cu -o /tmp/blc_<name>
# and run it in mode mlpblock: its one-layer check against the three-kernel layer is the
# variant's correctness test. Run from the repository root.
import sys

sys.path.insert(0, 'scripts/microbench')
from source_patch import SourcePatch

KERNEL = 'kernels/decode/decode_mlp_block.cu'
HEADER = 'kernels/decode/decode.h'


def cluster(sums):
    def patch(k, h):
        h.rep('#define WB_DECODE_MLP_SUMS 4', f'#define WB_DECODE_MLP_SUMS {sums}')
        k.rep('#include <cuda_fp16.h>\n', '#include <cooperative_groups.h>\n#include <cuda_fp16.h>\n')
        k.rep('  __shared__ float hs[kMlpUnits];\n',
              '  __shared__ float hs[kMlpUnits];\n'
              '  __shared__ alignas(16) float slots[8][kMlpOutWarp];  // [pushing rank][owned output]\n'
              '  cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();\n'
              '  const int rank = static_cast<int>(cluster.block_rank());\n'
              '  asm volatile("barrier.cluster.arrive.relaxed.aligned;\\n" ::: "memory");\n')
        k.rep('''  float* sums = mp.accumulate + (blockIdx.x % WB_DECODE_MLP_SUMS) * kMlpEmbd;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float v0 = ps[i][0] * (mine[i][0] - pz[i][0] * unitSum);
    const float v1 = ps[i][1] * (mine[i][1] - pz[i][1] * unitSum);
    const float n0 = __shfl_down_sync(0xffffffffu, v0, 1), n1 = __shfl_down_sync(0xffffffffu, v1, 1);
    if ((c & 1) == 0)
      atomicAdd(reinterpret_cast<float4*>(sums + out0 + 8 * (g + 8 * i) + 2 * c), make_float4(v0, v1, n0, n1));
  }''', '''  asm volatile("barrier.cluster.wait.acquire.aligned;\\n" ::: "memory");  // every block has started
  float* owner = cluster.map_shared_rank(&slots[0][0], warp) + rank * kMlpOutWarp;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float v0 = ps[i][0] * (mine[i][0] - pz[i][0] * unitSum);
    const float v1 = ps[i][1] * (mine[i][1] - pz[i][1] * unitSum);
    const float n0 = __shfl_down_sync(0xffffffffu, v0, 1), n1 = __shfl_down_sync(0xffffffffu, v1, 1);
    if ((c & 1) == 0)
      *reinterpret_cast<float4*>(owner + 8 * (g + 8 * i) + 2 * c) = make_float4(v0, v1, n0, n1);
  }
  asm volatile("barrier.cluster.arrive.release.aligned;\\nbarrier.cluster.wait.acquire.aligned;\\n" ::: "memory");
  if (threadIdx.x < kMlpOutWarp / 4) {
    float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      const float4 v = reinterpret_cast<const float4*>(slots[r])[threadIdx.x];
      s.x += v.x, s.y += v.y, s.z += v.z, s.w += v.w;
    }
    float* sums = mp.accumulate + (static_cast<int>(blockIdx.x) / 8 % WB_DECODE_MLP_SUMS) * kMlpEmbd;
    atomicAdd(reinterpret_cast<float4*>(sums + rank * kMlpOutWarp) + threadIdx.x, s);
  }''')
        k.rep('"decode MLP block launch", const_cast<WbDecodeMlpBlockParams*>(params));',
              '"decode MLP block launch", const_cast<WbDecodeMlpBlockParams*>(params), 8);')
    return patch


VARIANTS = {'cluster1': cluster(1), 'cluster4': cluster(4)}

for name in sys.argv[1:] or VARIANTS:
    k, h = SourcePatch(KERNEL), SourcePatch(HEADER)
    VARIANTS[name](k, h)
    k.write(f'/tmp/v{name}/{KERNEL}')
    h.write(f'/tmp/v{name}/{HEADER}')
    print(name)
