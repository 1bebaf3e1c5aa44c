// Micro-benchmark (issue 7, docs/PERF.md "Pushes instead of cluster barriers"): where the
// ~1.2 us that a decode kernel pays to read its predecessor's vector goes. A CUDA graph of
// 500 kernels of 128 blocks x 256 threads chained by programmatic launch; each waits for
// its predecessor, releases its successor, then does one mode's work (us per kernel, the
// mean of 7 x 200 replays, then the sample std):
//   none          nothing (the bare hand-over)
//   write         block b stores its 8 floats of a 1024-float vector
//   read-old      reads a vector no kernel of the chain writes, and reduces it over the block
//   read-new      reads the vector its predecessor wrote (write's), and reduces it
//   exchange      write + read-new (grid_dependency_cost.cu's "exchange")
//   atomics       adds a 1024-float partial into copy b % 4 of a sum (float4 atomics, the
//                 MLP block's pattern) and zeroes the copies two kernels back
//   atomics+read  atomics, then stages as an attention block does: 128 threads each load
//                 8 floats of each copy its predecessor added into, reduce sum and squares
//   atomics+old   atomics, then the same loads from a sum no kernel writes
//   read-sums     the same loads of the predecessor's sums without adding any itself
// The differences between modes split the hand-over's exchange into the producer's
// writes reaching L2, the consumer's reads of freshly written lines, and the reduction.
// Not part of the build (from the repository root):
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/hxp scripts/microbench/handover_exchange_parts.cu && /tmp/hxp
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

#include "chain_support.cuh"

namespace {

constexpr int kBlocks = 128, kThreads = 256, kEmbd = 1024, kCopies = 4, kRing = 3;
enum Mode { kNone, kWrite, kReadOld, kReadNew, kExchange, kAtomics, kAtomicsRead, kAtomicsOld, kReadSums, kModes };
const char* kNames[kModes] = {"none", "write", "read-old", "read-new", "exchange", "atomics", "atomics+read",
                              "atomics+old", "read-sums"};

struct Buffers {
  float* vec;      // [2][kEmbd]: written by kernel i into half i & 1
  float* old;      // [kCopies][kEmbd]: never written by the chain
  float* sums;     // [kRing][kCopies][kEmbd]
  float* sink;     // one float a block, written only if a sum is impossible (keeps the loads)
};

__device__ float blockReduce(float s, float q, float* red) {
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(~0u, s, o), q += __shfl_xor_sync(~0u, q, o);
  if ((threadIdx.x & 31) == 0) red[2 * (threadIdx.x >> 5)] = s, red[2 * (threadIdx.x >> 5) + 1] = q;
  __syncthreads();
  s = q = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) s += red[2 * w], q += red[2 * w + 1];
  return s * 1e-9f + q * 1e-12f;
}

// The vector of 1024 floats at v, read by all threads (4 each) and reduced.
__device__ float readVector(const float* v, float* red) {
  const float4 x = __ldcg(reinterpret_cast<const float4*>(v) + threadIdx.x);
  return blockReduce(x.x + x.y + x.z + x.w, x.x * x.x + x.y * x.y + x.z * x.z + x.w * x.w, red);
}

// kCopies sums at base, chunk t of 8 floats each for the first 128 threads (the staging's shape).
__device__ float readSums(const float* base, float* red) {
  float s = 0.f, q = 0.f;
  if (threadIdx.x < kEmbd / 8) {
    float4 lo[kCopies], hi[kCopies];
#pragma unroll
    for (int c = 0; c < kCopies; ++c) {
      const float4* src = reinterpret_cast<const float4*>(base + c * kEmbd) + 2 * threadIdx.x;
      lo[c] = __ldcg(src);
      hi[c] = __ldcg(src + 1);
    }
    float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int c = 0; c < kCopies; ++c)
      v[0] += lo[c].x, v[1] += lo[c].y, v[2] += lo[c].z, v[3] += lo[c].w, v[4] += hi[c].x, v[5] += hi[c].y,
          v[6] += hi[c].z, v[7] += hi[c].w;
#pragma unroll
    for (int e = 0; e < 8; ++e) s += v[e], q += v[e] * v[e];
  }
  return blockReduce(s, q, red);
}

__global__ void step(Buffers b, int i, int mode) {
  __shared__ float red[2 * kThreads / 32];
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  float r = 0.f;
  const int cur = i % kRing, prev = (i + kRing - 1) % kRing, back2 = (i + kRing - 2) % kRing;
  if (mode == kReadOld) r = readVector(b.old, red);
  if (mode == kReadNew || mode == kExchange) r = readVector(b.vec + ((i - 1) & 1) * kEmbd, red);
  if (mode == kWrite || mode == kExchange) {
    if (threadIdx.x < 8) b.vec[(i & 1) * kEmbd + blockIdx.x * 8 + threadIdx.x] = r + static_cast<float>(i);
  }
  if (mode == kAtomics || mode == kAtomicsRead || mode == kAtomicsOld) {
    // Zero the copies two kernels back (their reader, the previous kernel, has finished).
    const int t = blockIdx.x * kThreads + threadIdx.x;
    if (t < kCopies * kEmbd / 4)
      reinterpret_cast<float4*>(b.sums + back2 * kCopies * kEmbd)[t] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  if (mode == kAtomicsRead || mode == kReadSums) r = readSums(b.sums + prev * kCopies * kEmbd, red);
  if (mode == kAtomicsOld) r = readSums(b.old, red);
  if (mode == kAtomics || mode == kAtomicsRead || mode == kAtomicsOld) {
    float* dst = b.sums + cur * kCopies * kEmbd + (blockIdx.x % kCopies) * kEmbd;
    const float v = r + 1e-3f * static_cast<float>(threadIdx.x);
    atomicAdd(reinterpret_cast<float4*>(dst) + threadIdx.x, make_float4(v, v, v, v));
  }
  if (r == 12345.f) b.sink[blockIdx.x] = r;
}

}  // namespace

int main(int argc, char** argv) {
  Buffers b{};
  CK(cudaMalloc(&b.vec, 2 * kEmbd * 4));
  CK(cudaMalloc(&b.old, kCopies * kEmbd * 4));
  CK(cudaMalloc(&b.sums, kRing * kCopies * kEmbd * 4));
  CK(cudaMalloc(&b.sink, kBlocks * 4));
  CK(cudaMemset(b.vec, 0, 2 * kEmbd * 4));
  CK(cudaMemset(b.old, 0, kCopies * kEmbd * 4));
  CK(cudaMemset(b.sums, 0, kRing * kCopies * kEmbd * 4));
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  const int n = 500;
  for (int mode = 0; mode < kModes; ++mode) {
    if (argc > 1 && strcmp(argv[1], kNames[mode]) != 0) continue;
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    for (int i = 0; i < n; ++i) {
      LaunchConfig l(dim3(kBlocks), dim3(kThreads), s, true);
      CK(cudaLaunchKernelEx(&l.cfg, step, b, i + 2, mode));
    }
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const Timing t = timeGraph(ge, s);
    printf("%-13s %.3f +- %.3f us per kernel\n", kNames[mode], t.mean / n, t.std / n);
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
  }
  return 0;
}
