// Device-side deterministic fills for the decode micro-benchmarks: element i of a buffer
// gets hashBits(i, seed), as fp16 in [-scale/2, scale/2) or as a byte (packed int4 codes).
#pragma once

#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>

__device__ __forceinline__ unsigned hashBits(size_t i, unsigned seed) {
  unsigned h = (unsigned)i * 2654435761u ^ seed;
  h ^= h >> 13;
  h *= 0x5bd1e995u;
  return h ^ (h >> 15);
}
__global__ void fillHalf(__half* p, size_t n, float scale, unsigned seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    p[i] = __float2half(((hashBits(i, seed) & 0xffff) / 65536.f - 0.5f) * scale);
}
__global__ void fillBytes(uint8_t* p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    p[i] = (uint8_t)hashBits(i, seed);
}
