#!/usr/bin/env python3
# Writes /tmp/v<name>/kernels/decode/ copies for variants of how the attention block's
# clusters are placed (docs/PERF.md, "Where the attention block's clusters land"), or only
# those named in argv (several joined by '+', e.g. place+spread); prints their names.
# Build one with
#   nvcc -O3 -std=c++17 -arch=sm_90a --expt-relaxed-constexpr -I/tmp/v<name> -I. \
#       '-DMC_BLOCK_SRC="/tmp/v<name>/kernels/decode/decode_attention_block.cu"' \
#       scripts/microbench/decode_block_layer_chain.cu -o /tmp/blc_<name>
# (the copies' decode_launch.h is found first through -I) and run it in mode mlpblock.
# Variants: spread / balance: cluster launches ask for cudaClusterSchedulingPolicySpread /
# LoadBalancing; place: the attention block records each block's SM and %globaltimer at
# entry and exit, and at exit the program prints, for the last launch, how many SMs its
# blocks used, the most blocks on one SM, the spread of the entry times and the time to the
# last exit, with the occupancy API's count of clusters that fit at once; extra8: 8 KB of
# unused dynamic shared memory (with place: what fits once two blocks no longer share an SM);
# c4: a head on a cluster of 4 blocks of 16 warps instead of 8 of 8 (64 blocks, 64-key tiles).
import sys

sys.path.insert(0, 'scripts/microbench')
from source_patch import SourcePatch

LAUNCH = 'kernels/decode/decode_launch.h'
BLOCK = 'kernels/decode/decode_attention_block.cu'


def policy(name):
    def patch(files):
        p = files[LAUNCH]
        p.rep('  cudaLaunchAttribute attr[3];', '  cudaLaunchAttribute attr[4];')
        p.rep('''    attr[n++].val.clusterDim.z = 1;
  }''', f'''    attr[n++].val.clusterDim.z = 1;
    attr[n].id = cudaLaunchAttributeClusterSchedulingPolicyPreference;
    attr[n++].val.clusterSchedulingPolicyPreference = {name};
  }}''')
    return patch


PLACE_DEVICE = '''
__device__ unsigned long long g_place[3 * 512];  // per block: SM, entry, exit (%globaltimer)
__device__ __forceinline__ unsigned long long placeNow() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ unsigned placeSm() {
  unsigned s;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
  return s;
}
'''

PLACE_HOST = '''
int g_placeBlocks = 0, g_placeClusters = -1;
void placeReport() {
  static unsigned long long h[3 * 512];
  if (cudaMemcpyFromSymbol(h, g_place, sizeof h) != cudaSuccess) {
    printf("place: %s\\n", cudaGetErrorString(cudaGetLastError()));
    return;
  }
  std::map<unsigned long long, int> perSm;
  unsigned long long e0 = ~0ull, e1 = 0, x1 = 0;
  for (int b = 0; b < g_placeBlocks; ++b) {
    ++perSm[h[3 * b]];
    e0 = std::min(e0, h[3 * b + 1]), e1 = std::max(e1, h[3 * b + 1]), x1 = std::max(x1, h[3 * b + 2]);
  }
  int most = 0;
  for (auto& kv : perSm) most = std::max(most, kv.second);
  printf("place: %d blocks on %zu SMs (at most %d on one), entries spread over %.2f us, last exit %.2f us after the "
         "first entry; clusters of 8 that fit at once: %d\\n",
         g_placeBlocks, perSm.size(), most, (e1 - e0) / 1e3, (x1 - e0) / 1e3, g_placeClusters);
}
'''


def place(files):
    p = files[BLOCK]
    p.rep('#include <cfloat>\n', '#include <cfloat>\n#include <algorithm>\n#include <cstdio>\n#include <cstdlib>\n#include <map>\n')
    p.rep('namespace cg = cooperative_groups;\n', 'namespace cg = cooperative_groups;\n' + PLACE_DEVICE + PLACE_HOST)
    p.rep('''  __shared__ BlockShared sh;
  clusterArriveRelaxed();''', '''  __shared__ BlockShared sh;
  if (threadIdx.x == 0) g_place[3 * blockIdx.x] = placeSm(), g_place[3 * blockIdx.x + 1] = placeNow();
  clusterArriveRelaxed();''')
    p.rep('''        ab.headPartials[static_cast<int64_t>(head) * e + projRow0 + i] = a;
    }
  }
}''', '''        ab.headPartials[static_cast<int64_t>(head) * e + projRow0 + i] = a;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) g_place[3 * blockIdx.x + 2] = placeNow();
}''')
    p.rep('''  auto kernel = attentionBlockKernel<kIn, kInt4, kV>;''', '''  auto kernel = attentionBlockKernel<kIn, kInt4, kV>;
  if (g_placeClusters < 0) {  // once: what fits, then the report at exit (before the runtime's own teardown)
    g_placeBlocks = p.heads * kClusterBlocks;
    cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (p.sharedCarveout > 0)
      cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributePreferredSharedMemoryCarveout,
                           p.sharedCarveout);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(p.heads * kClusterBlocks);
    cfg.blockDim = dim3(kBlockThreads);
    cfg.dynamicSmemBytes = smem;
    cudaLaunchAttribute at;
    at.id = cudaLaunchAttributeClusterDimension;
    at.val.clusterDim.x = kClusterBlocks, at.val.clusterDim.y = 1, at.val.clusterDim.z = 1;
    cfg.attrs = &at;
    cfg.numAttrs = 1;
    if (cudaOccupancyMaxActiveClusters(&g_placeClusters, reinterpret_cast<const void*>(kernel), &cfg) != cudaSuccess)
      g_placeClusters = 0, cudaGetLastError();
    atexit(placeReport);
  }''')


def extra8(files):  # as decode_block_smem_variants.py's: 8 KB of unused dynamic shared memory
    files[BLOCK].rep(KEYS, KEYS[:-1] + ' + 8 * 1024;')


def c4(files):  # a head on a cluster of 4 blocks of 16 warps (one warp a head dim still)
    files[BLOCK].rep('constexpr int kClusterBlocks = 8;', 'constexpr int kClusterBlocks = 4;')
    files[BLOCK].rep('constexpr int kBlockWarps = 8;', 'constexpr int kBlockWarps = 16;')
    # static + dynamic bytes now pass 48 KB with less than 48 KB dynamic: always opt in
    files[BLOCK].rep('''  if (smem > 48 * 1024 &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize''', '''  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize''')


KEYS = '         static_cast<size_t>(tiles) * kTileKeys * 2 * kHeadDim * sizeof(__half);'
VARIANTS = {'spread': policy('cudaClusterSchedulingPolicySpread'),
            'balance': policy('cudaClusterSchedulingPolicyLoadBalancing'), 'place': place, 'extra8': extra8,
            'c4': c4}

for name in sys.argv[1:] or VARIANTS:
    files = {LAUNCH: SourcePatch(LAUNCH), BLOCK: SourcePatch(BLOCK)}
    for part in name.split('+'):
        VARIANTS[part](files)
    for path, p in files.items():
        p.write(f'/tmp/v{name}/{path}')
    print(name)
