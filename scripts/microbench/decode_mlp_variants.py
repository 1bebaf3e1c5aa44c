#!/usr/bin/env python3
# Writes /tmp/v<name>/kernels/decode/{decode.cu,decode_device.cuh} for each variant of the
# int4 GEMV timed in docs/PERF.md ("Where an int4 decode kernel's time goes"), or only
# those named in argv; prints their names. Build one with
#   nvcc ... -I/tmp/v<name> -I. '-DMC_DECODE_SRC="/tmp/v<name>/kernels/decode/decode.cu"' \
#       scripts/microbench/decode_mlp_chain.cu
# (the patched header shadows the tree's). Run from the repository root; the patterns
# match decode.cu / decode_device.cuh as of session 13.
import os, sys
base_cu = open('kernels/decode/decode.cu').read()
base_h = open('kernels/decode/decode_device.cuh').read()
def rep(s, old, new):
    assert old in s, old[:80]
    return s.replace(old, new, 1)
def marlin(h):
    return rep(h, """    const uint32_t q = wa[e];
    const uint4 xv = sxq[e * chunks32 + c];
    __half2 a = __hmul2(__hsub2(asHalf2(lop3Nibbles(q)), zz), asHalf2(xv.x));
    a = __hfma2(__hsub2(asHalf2(lop3Nibbles(q >> 4)), zz), asHalf2(xv.y), a);
    a = __hfma2(__hsub2(asHalf2(lop3Nibbles(q >> 8)), zz), asHalf2(xv.z), a);
    a = __hfma2(__hsub2(asHalf2(lop3Nibbles(q >> 12)), zz), asHalf2(xv.w), a);""",
    """    const uint32_t q = wa[e], q8 = q >> 8;
    const uint4 xv = sxq[e * chunks32 + c];
    // high nibbles as 1024 + 16 n: times 1/16 minus (64 + zero) is n - zero, exactly
    const __half2 sixteenth = __float2half2_rn(0.0625f), zz16 = __hneg2(__hmul2(zz, sixteenth));
    uint32_t hi0, hi1;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;\\n" : "=r"(hi0) : "r"(q), "r"(0x00F000F0u), "r"(0x64006400u));
    asm("lop3.b32 %0, %1, %2, %3, 0xea;\\n" : "=r"(hi1) : "r"(q8), "r"(0x00F000F0u), "r"(0x64006400u));
    __half2 a = __hmul2(__hsub2(asHalf2(lop3Nibbles(q)), zz), asHalf2(xv.x));
    a = __hfma2(__hfma2(asHalf2(hi0), sixteenth, zz16), asHalf2(xv.y), a);
    a = __hfma2(__hsub2(asHalf2(lop3Nibbles(q8)), zz), asHalf2(xv.z), a);
    a = __hfma2(__hfma2(asHalf2(hi1), sixteenth, zz16), asHalf2(xv.w), a);""")
def lanes16(cu):
    cu = rep(cu, "constexpr int kMaxWarps = 12, kMaxWarpsLong = 8;", "constexpr int kMaxWarps = 16, kMaxWarpsFp16 = 12, kMaxWarpsLong = 8;")
    cu = rep(cu, "__launch_bounds__((kVmax == 4 ? kMaxWarps : kMaxWarpsLong) * 32)", "__launch_bounds__((kVmax == 4 ? (kInt4 ? kMaxWarps : kMaxWarpsFp16) : kMaxWarpsLong) * 32)")
    cu = rep(cu, "const int cap = perLane <= 4 ? kMaxWarps : kMaxWarpsLong;", "const int cap = perLane <= 4 ? (kInt4 ? kMaxWarps : kMaxWarpsFp16) : kMaxWarpsLong;")
    cu = rep(cu, "return p.k / 32 <= 32 ? launchLinear<kIn, kOut, true, 8>(p, stream) : launchLinear<kIn, kOut, true, 32>(p, stream);",
             "return p.k / 32 <= 32 ? launchLinear<kIn, kOut, true, 16>(p, stream) : launchLinear<kIn, kOut, true, 32>(p, stream);")
    return cu
PROD_OLD = """#pragma unroll
      for (int v = 0; v < kVmax; ++v) {
        const int c = base + sub + v * L::kLanes;
        if (c >= rowChunks) continue;
        const int a = v & 3;
        if (kInt4) {
          const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(zero[v]));
          accs[a] = fmaf(dotInt4Chunk(w[v], zz, sxq, k / 32, c), __half2float(scale[v]), accs[a]);"""
def nobranch(cu):
    return rep(cu, PROD_OLD, """#pragma unroll
      for (int v = 0; v < kVmax; ++v) {
        const int cRaw = base + sub + v * L::kLanes;
        const bool valid = cRaw < rowChunks;
        const int c = valid ? cRaw : 0;  // w[v] is zero past the row: adds nothing
        const int a = v & 3;
        if (kInt4) {
          const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(zero[v]));
          const float d = dotInt4Chunk(w[v], zz, sxq, k / 32, c);
          accs[a] = fmaf(valid ? d : 0.f, __half2float(scale[v]), accs[a]);""")
def nb2(cu):
    cu = nobranch(cu)
    cu = rep(cu, """      w[v] = make_uint4(0, 0, 0, 0);
      if (row < n && c < rowChunks) {""", """      w[v] = make_uint4(0, 0, 0, 0);
      scale[v] = __float2half(0.f);
      zero[v] = 8;
      if (row < n && c < rowChunks) {""")
    cu = rep(cu, """  waitForPrevious();
  releaseDependents();
  const int64_t stepPos""", """  __half2 zzv[kVmax];
  float scalef[kVmax];
#pragma unroll
  for (int v = 0; v < kVmax; ++v) {
    zzv[v] = __float2half2_rn(1024.f + static_cast<float>(zero[v]));
    scalef[v] = __half2float(scale[v]);
    if (kInt4) asm volatile("" ::"r"(*reinterpret_cast<uint32_t*>(&zzv[v])), "f"(scalef[v]));
  }
  waitForPrevious();
  releaseDependents();
  const int64_t stepPos""")
    cu = rep(cu, """          const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(zero[v]));
          const float d = dotInt4Chunk(w[v], zz, sxq, k / 32, c);
          accs[a] = fmaf(valid ? d : 0.f, __half2float(scale[v]), accs[a]);""", """          const bool pre = loaded0;
          const __half2 zz = pre ? zzv[v] : __float2half2_rn(1024.f + static_cast<float>(zero[v]));
          const float d = dotInt4Chunk(w[v], zz, sxq, k / 32, c);
          accs[a] = fmaf(valid ? d : 0.f, pre ? scalef[v] : __half2float(scale[v]), accs[a]);""")
    cu = rep(cu, """      if (!loaded) load(row, base);
      loaded = false;""", """      const bool loaded0 = loaded;
      if (!loaded) load(row, base);
      loaded = false;""")
    return cu
def tree(h):
    h = rep(h, """  const uint32_t* wa = reinterpret_cast<const uint32_t*>(&w);
  float part = 0.f;
#pragma unroll
  for (int e = 0; e < 4; ++e) {""", """  const uint32_t* wa = reinterpret_cast<const uint32_t*>(&w);
  float parts[4];
#pragma unroll
  for (int e = 0; e < 4; ++e) {""")
    h = rep(h, """    const float2 f = __half22float2(a);
    part += f.x + f.y;
  }
  return part;""", """    const float2 f = __half22float2(a);
    parts[e] = f.x + f.y;
  }
  return (parts[0] + parts[1]) + (parts[2] + parts[3]);""")
    return h
# Ablations: one stage of decodeLinearKernel removed (results are wrong; timing only).
def no_stage(cu):
    return rep(cu, """    stageInput<kIn, kInt4>(p, sx, sxq, sln, scratch, attnPos);
  }""", """    __syncthreads();
  }""")
def no_products(cu):
    return rep(cu, """          const __half2 zz = __float2half2_rn(1024.f + static_cast<float>(zero[v]));
          accs[a] = fmaf(dotInt4Chunk(w[v], zz, sxq, k / 32, c), __half2float(scale[v]), accs[a]);""",
               """          accs[a] += __int_as_float((w[v].x ^ w[v].y ^ w[v].z ^ w[v].w) & 0x3f000000) + __half2float(scale[v]);""")
def no_epilogue(cu):
    return rep(cu, """    storeRow<kOut>(p, row, acc + b, first, residual0, stepPos, best, bestIdx);""",
               """    if (acc == 1234.5f) static_cast<__half*>(p.y)[row] = __float2half(acc + b + residual0);""")
def heads_direct(h):
    h = rep(h, """  if constexpr (kIn == WB_DECODE_IN_HEADS) {
    for (int kc = threadIdx.x; kc < chunks8; kc += threads)
      reinterpret_cast<uint4*>(sx)[kc] = attentionResidualChunk(p, kc);
    __syncthreads();
    src = reinterpret_cast<const __half*>(sx);
  }""", """""")
    return rep(h, """      raw[u] = kIn == WB_DECODE_IN_HEADS ? reinterpret_cast<const uint4*>(src)[kc]
                                         : __ldcg(reinterpret_cast<const uint4*>(src + kc * 8));""",
               """      raw[u] = kIn == WB_DECODE_IN_HEADS ? attentionResidualChunk(p, kc)
                                         : __ldcg(reinterpret_cast<const uint4*>(src + kc * 8));""")
def nolds(h):
    return rep(h, "    const uint4 xv = sxq[e * chunks32 + c];", "    const uint4 xv = make_uint4(wa[e] ^ 0x3c003c00u, wa[e] + 0x3c003c00u, wa[e] | 0x3c003c00u, c);")
# base: as the tree; marlin: high nibbles by lop3 + hfma2 by 1/16; l16: 16 lanes a row (2
# chunks a lane, up to 16 warps); nobranch: chunks past the row computed on chunk 0 and
# dropped; nolds: inputs from registers (timing only: wrong results); nb2: nobranch with
# zero points and scales converted before the wait; nb3: nb2 with a tree sum; nb4: nb3 + l16;
# headsdirect: the HEADS input's residual + heads computed into the LayerNorm's registers, not
# through shared memory and a barrier (for decode_block_layer_chain.cu); and the ablations nostage, noproducts, noepilogue, nostageprod, none (stages removed).
variants = {'base': (base_cu, base_h), 'marlin': (base_cu, marlin(base_h)), 'l16': (lanes16(base_cu), base_h),
            'l16marlin': (lanes16(base_cu), marlin(base_h)),
            'nobranch': (nobranch(base_cu), base_h), 'nolds': (base_cu, nolds(base_h)),
            'nb2': (nb2(base_cu), base_h), 'nb3': (nb2(base_cu), tree(base_h)), 'nb4': (lanes16(nb2(base_cu)), tree(base_h))}
variants.update({'headsdirect': (base_cu, heads_direct(base_h)),'nostage': (no_stage(base_cu), base_h), 'noproducts': (no_products(base_cu), base_h),
                 'noepilogue': (no_epilogue(base_cu), base_h),
                 'nostageprod': (no_products(no_stage(base_cu)), base_h),
                 'none': (no_epilogue(no_products(no_stage(base_cu))), base_h)})
if len(sys.argv) > 1: variants = {k: v for k, v in variants.items() if k in sys.argv[1:]}
for name, (cu, h) in variants.items():
    d = f'/tmp/v{name}/kernels/decode'
    os.makedirs(d, exist_ok=True)
    open(d + '/decode.cu', 'w').write(cu)
    open(d + '/decode_device.cuh', 'w').write(h)
print(' '.join(variants))
