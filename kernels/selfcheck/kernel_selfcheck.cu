// wb_kernel_selfcheck: checks the kernels against double-precision CPU references on
// fresh random inputs (outputs poisoned with NaN first, so an unwritten element fails),
// then times them with CUDA events after warm-up. Needs no LibTorch, so it runs on a
// GPU machine straight from a binary built anywhere nvcc exists.
// Usage: wb_kernel_selfcheck [--check-only | --time-only | --time-xent]
// Not here: the comparison with LibTorch's SDPA (gpt2-bench perf attention does that).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/flash_attention/flash_attention.h"
#include "kernels/int4_matmul/int4_matmul.h"
#include "kernels/softmax_xent/softmax_xent.h"

namespace {

#define CK(call)                                                                              \
  do {                                                                                        \
    cudaError_t e_ = (call);                                                                  \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(3);                                                                           \
    }                                                                                         \
  } while (0)
#define WB(call)                                                                                  \
  do {                                                                                            \
    WbStatus s_ = (call);                                                                         \
    if (s_ != WB_STATUS_OK) {                                                                     \
      std::fprintf(stderr, "%s:%d: %s: status %d: %s\n", __FILE__, __LINE__, #call, int(s_),       \
                   wbKernelsLastError());                                                         \
      std::exit(3);                                                                               \
    }                                                                                             \
  } while (0)

int failures = 0, passes = 0;

uint16_t toBits(float f, WbDtype dt) {
  if (dt == WB_DTYPE_BF16) {
    __nv_bfloat16 b = __float2bfloat16_rn(f);
    uint16_t u;
    std::memcpy(&u, &b, 2);
    return u;
  }
  __half h = __float2half_rn(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}
float fromBits(uint16_t u, WbDtype dt) {
  if (dt == WB_DTYPE_BF16) {
    __nv_bfloat16 b;
    std::memcpy(&b, &u, 2);
    return __bfloat162float(b);
  }
  __half h;
  std::memcpy(&h, &u, 2);
  return __half2float(h);
}

template <typename T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) { CK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T))); }
  ~DevBuf() { cudaFree(p); }
  void up(const std::vector<T>& h) { CK(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> down() const {
    std::vector<T> h(n);
    CK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  void poison() { CK(cudaMemset(p, 0xFF, n * sizeof(T))); }  // NaN for 16/32-bit floats
};

struct Err {
  double rel = 0, maxAbs = 0;
  bool nan = false;
};
Err compare(const std::vector<double>& out, const std::vector<double>& ref) {
  double num = 0, den = 0;
  Err e;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) e.nan = true;
    const double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    e.maxAbs = std::max(e.maxAbs, std::fabs(d));
  }
  // A floor of 1e-3 RMS in the denominator: all-zero references (dQ, dK at T = 1)
  // compare absolutely instead of dividing by zero.
  e.rel = std::sqrt(num) / (std::sqrt(den) + 1e-3 * std::sqrt(double(out.size())));
  return e;
}

void report(const char* what, const Err& e, double tol) {
  const bool ok = !e.nan && e.rel <= tol;
  ok ? ++passes : ++failures;
  std::printf("  %-58s rel %.2e  maxabs %.2e  tol %.0e  %s\n", what, e.rel, e.maxAbs, tol, ok ? "ok" : "FAIL");
}

// ---------------------------------------------------------------- flash attention
struct AttnCase {
  int b, h, tq, tk, d;
  bool causal;
  WbDtype dt;
};

void checkFlash(const AttnCase& c, std::mt19937& rng) {
  // Storage [B, T, H, D] (GPT-2's split of qkv), addressed through strides.
  const int B = c.b, H = c.h, Tq = c.tq, Tk = c.tk, D = c.d;
  const size_t nq = size_t(B) * Tq * H * D, nk = size_t(B) * Tk * H * D;
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<uint16_t> hq(nq), hk(nk), hv(nk), hdo(nq);
  for (auto& x : hq) x = toBits(nd(rng), c.dt);
  for (auto& x : hk) x = toBits(nd(rng), c.dt);
  for (auto& x : hv) x = toBits(nd(rng), c.dt);
  for (auto& x : hdo) x = toBits(nd(rng), c.dt);
  DevBuf<uint16_t> q(nq), k(nk), v(nk), o(nq), dout(nq), dq(nq), dk(nk), dv(nk);
  DevBuf<float> lse(size_t(B) * H * Tq);
  DevBuf<unsigned char> ws(wbFlashAttnBackwardWorkspace(B, H, Tq, D));
  q.up(hq), k.up(hk), v.up(hv), dout.up(hdo);
  o.poison(), lse.poison(), dq.poison(), dk.poison(), dv.poison();
  const float scale = 1.f / std::sqrt(float(D));
  const int64_t sq[3] = {int64_t(Tq) * H * D, D, int64_t(H) * D}, sk[3] = {int64_t(Tk) * H * D, D, int64_t(H) * D};

  WbFlashFwdParams f{};
  f.q = q.p, f.k = k.p, f.v = v.p, f.o = o.p, f.lse = lse.p;
  std::memcpy(f.qStride, sq, sizeof sq), std::memcpy(f.oStride, sq, sizeof sq);
  std::memcpy(f.kStride, sk, sizeof sk), std::memcpy(f.vStride, sk, sizeof sk);
  f.batch = B, f.heads = H, f.seqlenQ = Tq, f.seqlenK = Tk, f.headDim = D, f.scale = scale, f.causal = c.causal;
  f.dtype = c.dt;
  WbFlashBwdParams bp{};
  bp.q = q.p, bp.k = k.p, bp.v = v.p, bp.o = o.p, bp.dout = dout.p, bp.lse = lse.p;
  bp.dq = dq.p, bp.dk = dk.p, bp.dv = dv.p, bp.workspace = ws.p;
  for (auto* s : {bp.qStride, bp.oStride, bp.doStride, bp.dqStride}) std::memcpy(s, sq, sizeof sq);
  for (auto* s : {bp.kStride, bp.vStride, bp.dkStride, bp.dvStride}) std::memcpy(s, sk, sizeof sk);
  bp.batch = B, bp.heads = H, bp.seqlenQ = Tq, bp.seqlenK = Tk, bp.headDim = D, bp.scale = scale;
  bp.causal = c.causal, bp.dtype = c.dt;

  // Reference in double from the rounded inputs.
  auto at = [&](const std::vector<uint16_t>& t, int T, int b, int i, int h, int d) {
    return double(fromBits(t[((size_t(b) * T + i) * H + h) * D + d], c.dt));
  };
  std::vector<double> refO(nq), refL(size_t(B) * H * Tq), refDq(nq, 0), refDk(nk, 0), refDv(nk, 0);
  const int off = Tk - Tq;
  std::vector<double> p(Tk), dp(Tk);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < Tq; ++i) {
        double mx = -INFINITY;
        for (int j = 0; j < Tk; ++j) {
          if (c.causal && j > i + off) {
            p[j] = -INFINITY;
            continue;
          }
          double s = 0;
          for (int d = 0; d < D; ++d) s += at(hq, Tq, b, i, h, d) * at(hk, Tk, b, j, h, d);
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int j = 0; j < Tk; ++j) sum += (p[j] = std::isinf(p[j]) ? 0.0 : std::exp(p[j] - mx));
        refL[(size_t(b) * H + h) * Tq + i] = mx + std::log(sum);
        for (int j = 0; j < Tk; ++j) p[j] /= sum;
        double delta = 0;
        for (int d = 0; d < D; ++d) {
          double acc = 0;
          for (int j = 0; j < Tk; ++j) acc += p[j] * at(hv, Tk, b, j, h, d);
          refO[((size_t(b) * Tq + i) * H + h) * D + d] = acc;
          delta += acc * at(hdo, Tq, b, i, h, d);
        }
        for (int j = 0; j < Tk; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d) s += at(hdo, Tq, b, i, h, d) * at(hv, Tk, b, j, h, d);
          dp[j] = p[j] * (s - delta);  // dS
        }
        for (int j = 0; j < Tk; ++j) {
          if (p[j] == 0) continue;
          for (int d = 0; d < D; ++d) {
            refDq[((size_t(b) * Tq + i) * H + h) * D + d] += scale * dp[j] * at(hk, Tk, b, j, h, d);
            refDk[((size_t(b) * Tk + j) * H + h) * D + d] += scale * dp[j] * at(hq, Tq, b, i, h, d);
            refDv[((size_t(b) * Tk + j) * H + h) * D + d] += p[j] * at(hdo, Tq, b, i, h, d);
          }
        }
      }

  auto toD = [&](const std::vector<uint16_t>& t) {
    std::vector<double> r(t.size());
    for (size_t i = 0; i < t.size(); ++i) r[i] = fromBits(t[i], c.dt);
    return r;
  };
  const double tolO = c.dt == WB_DTYPE_BF16 ? 1e-2 : 2e-3;
  const double tolG = c.dt == WB_DTYPE_BF16 ? 2e-2 : 4e-3;
  char name[160];
  for (int variant = 0; variant < wbFlashAttnForwardVariants(); ++variant) {
    if (D != 64 && variant > 0) break;
    o.poison(), lse.poison();
    f.variant = variant;
    WB(wbFlashAttnForward(&f, nullptr));
    CK(cudaDeviceSynchronize());
    const auto lv = lse.down();
    std::vector<double> ld(lv.begin(), lv.end());
    std::snprintf(name, sizeof name, "fwd v%d %s B%d H%d Tq%d Tk%d D%d %s: O", variant,
                  c.dt == WB_DTYPE_BF16 ? "bf16" : "fp16", B, H, Tq, Tk, D, c.causal ? "causal" : "full");
    report(name, compare(toD(o.down()), refO), tolO);
    std::snprintf(name, sizeof name, "fwd v%d: L", variant);
    report(name, compare(ld, refL), 1e-4);
  }
  f.variant = 0;
  WB(wbFlashAttnForward(&f, nullptr));
  for (int variant = 0; variant < wbFlashAttnBackwardVariants(); ++variant) {
    if (D != 64 && variant > 0) break;
    dq.poison(), dk.poison(), dv.poison();
    bp.variant = variant;
    WB(wbFlashAttnBackward(&bp, nullptr));
    CK(cudaDeviceSynchronize());
    std::snprintf(name, sizeof name, "bwd v%d dQ", variant);
    report(name, compare(toD(dq.down()), refDq), tolG);
    std::snprintf(name, sizeof name, "bwd v%d dK", variant);
    report(name, compare(toD(dk.down()), refDk), tolG);
    std::snprintf(name, sizeof name, "bwd v%d dV", variant);
    report(name, compare(toD(dv.down()), refDv), tolG);
  }
}

struct Timing {
  double mean = 0, std = 0;
  int n = 0;
};
// One sample = `inner` back-to-back calls between two events (a lone call would also
// time the host's launch gap); reported per call.
template <typename F>
Timing timeIt(F&& fn, int warmup = 5, int reps = 20, int inner = 10) {
  for (int i = 0; i < warmup; ++i) fn();
  CK(cudaDeviceSynchronize());
  std::vector<double> ms;
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a));
    for (int j = 0; j < inner; ++j) fn();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float t = 0;
    CK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t / inner);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  Timing r;
  r.n = reps;
  for (double x : ms) r.mean += x;
  r.mean /= reps;
  for (double x : ms) r.std += (x - r.mean) * (x - r.mean);
  r.std = std::sqrt(r.std / (reps - 1));
  return r;
}

void timeFlash(int B, int H, int T, int D, bool causal, WbDtype dt) {
  const size_t n = size_t(B) * T * H * D;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<uint16_t> h(n);
  DevBuf<uint16_t> q(n), k(n), v(n), o(n), dout(n), dq(n), dk(n), dv(n);
  for (auto* buf : {&q, &k, &v, &dout}) {
    for (auto& x : h) x = toBits(nd(rng), dt);
    buf->up(h);
  }
  DevBuf<float> lse(size_t(B) * H * T);
  DevBuf<unsigned char> ws(wbFlashAttnBackwardWorkspace(B, H, T, D));
  // [B, H, T, D] contiguous here, the layout SDPA is usually handed.
  const int64_t s[3] = {int64_t(H) * T * D, int64_t(T) * D, D};
  WbFlashFwdParams f{};
  f.q = q.p, f.k = k.p, f.v = v.p, f.o = o.p, f.lse = lse.p;
  for (auto* st : {f.qStride, f.kStride, f.vStride, f.oStride}) std::memcpy(st, s, sizeof s);
  f.batch = B, f.heads = H, f.seqlenQ = T, f.seqlenK = T, f.headDim = D, f.scale = 0.125f, f.causal = causal;
  f.dtype = dt;
  WbFlashBwdParams bp{};
  bp.q = q.p, bp.k = k.p, bp.v = v.p, bp.o = o.p, bp.dout = dout.p, bp.lse = lse.p;
  bp.dq = dq.p, bp.dk = dk.p, bp.dv = dv.p, bp.workspace = ws.p;
  for (auto* st : {bp.qStride, bp.kStride, bp.vStride, bp.oStride, bp.doStride, bp.dqStride, bp.dkStride, bp.dvStride})
    std::memcpy(st, s, sizeof s);
  bp.batch = B, bp.heads = H, bp.seqlenQ = T, bp.seqlenK = T, bp.headDim = D, bp.scale = 0.125f;
  bp.causal = causal, bp.dtype = dt;
  const double flops = 4.0 * B * H * double(T) * T * D / (causal ? 2.0 : 1.0);
  const char* dts = dt == WB_DTYPE_BF16 ? "bf16" : "fp16";
  for (int var = 0; var < wbFlashAttnForwardVariants(); ++var) {
    f.variant = var;
    const Timing t = timeIt([&] { WB(wbFlashAttnForward(&f, nullptr)); });
    std::printf("TIME flash fwd v%d %s B%d H%d T%d D%d %s: %.4f +- %.4f ms (n=%d)  %.1f TFLOP/s\n", var, dts, B, H, T,
                D, causal ? "causal" : "full", t.mean, t.std, t.n, flops / (t.mean * 1e-3) / 1e12);
  }
  f.variant = 0;
  WB(wbFlashAttnForward(&f, nullptr));
  for (int var = 0; var < wbFlashAttnBackwardVariants(); ++var) {
    bp.variant = var;
    const Timing t = timeIt([&] { WB(wbFlashAttnBackward(&bp, nullptr)); });
    std::printf("TIME flash bwd v%d %s B%d H%d T%d D%d %s: %.4f +- %.4f ms (n=%d)  %.1f TFLOP/s\n", var, dts, B, H, T,
                D, causal ? "causal" : "full", t.mean, t.std, t.n, 2.5 * flops / (t.mean * 1e-3) / 1e12);
  }
}

// ---------------------------------------------------------------- int4 matmul
struct QuantHost {
  std::vector<uint8_t> packed, zeros;
  std::vector<uint16_t> scales;  // fp16 bits
  std::vector<double> w;         // dequantized [N, K]
};

QuantHost makeQuant(int N, int K, int group, bool asym, std::mt19937& rng) {
  QuantHost q;
  const int G = K / group;
  q.packed.assign(size_t(N) * K / 2, 0);
  q.scales.resize(size_t(N) * G);
  if (asym) q.zeros.resize(size_t(N) * G);
  q.w.resize(size_t(N) * K);
  std::uniform_int_distribution<int> code(0, 15), zp(3, 12);
  std::uniform_real_distribution<float> sc(0.002f, 0.05f);
  for (int n = 0; n < N; ++n)
    for (int gi = 0; gi < G; ++gi) {
      const uint16_t sb = toBits(sc(rng), WB_DTYPE_F16);
      q.scales[size_t(n) * G + gi] = sb;
      const double s = fromBits(sb, WB_DTYPE_F16);
      const int z = asym ? zp(rng) : 8;
      if (asym) q.zeros[size_t(n) * G + gi] = uint8_t(z);
      for (int i = gi * group; i < (gi + 1) * group; ++i) {
        const int cv = asym ? code(rng) : 1 + code(rng) % 15;  // symmetric codes are 1..15
        q.packed[(size_t(n) * K + i) / 2] |= uint8_t(cv << ((i & 1) * 4));
        q.w[size_t(n) * K + i] = (cv - z) * s;
      }
    }
  return q;
}

void checkInt4(int M, int N, int K, int group, bool asym, WbDtype dt, bool gemm, std::mt19937& rng) {
  const QuantHost q = makeQuant(N, K, group, asym, rng);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<uint16_t> hx(size_t(M) * K), hb(N);
  for (auto& x : hx) x = toBits(nd(rng), dt);
  for (auto& x : hb) x = toBits(nd(rng), dt);
  DevBuf<uint16_t> x(hx.size()), y(size_t(M) * N), bias(N), scales(q.scales.size());
  DevBuf<uint8_t> packed(q.packed.size()), zeros(std::max<size_t>(q.zeros.size(), 1));
  x.up(hx), bias.up(hb), scales.up(q.scales), packed.up(q.packed);
  if (asym) zeros.up(q.zeros);
  y.poison();
  WbInt4MatmulParams p{};
  p.x = x.p, p.qweight = packed.p, p.scales = scales.p, p.zeros = asym ? zeros.p : nullptr, p.bias = bias.p;
  p.y = y.p, p.xStride = K, p.yStride = N, p.m = M, p.n = N, p.k = K, p.groupSize = group, p.dtype = dt;
  WB(gemm ? wbInt4Gemm(&p, nullptr) : wbInt4Gemv(&p, nullptr));
  CK(cudaDeviceSynchronize());
  std::vector<double> ref(size_t(M) * N), out(size_t(M) * N);
  const auto hy = y.down();
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double acc = fromBits(hb[n], dt);
      for (int kk = 0; kk < K; ++kk) acc += double(fromBits(hx[size_t(m) * K + kk], dt)) * q.w[size_t(n) * K + kk];
      ref[size_t(m) * N + n] = acc;
      out[size_t(m) * N + n] = fromBits(hy[size_t(m) * N + n], dt);
    }
  char name[160];
  std::snprintf(name, sizeof name, "int4 %s %s M%d N%d K%d g%d %s", gemm ? "gemm" : "gemv",
                dt == WB_DTYPE_BF16 ? "bf16" : "fp16", M, N, K, group, asym ? "asym" : "sym");
  report(name, compare(out, ref), dt == WB_DTYPE_BF16 ? 1e-2 : 3e-3);
}

void timeInt4(int M, int N, int K, int group, WbDtype dt, bool gemm) {
  std::mt19937 rng(11);
  const QuantHost q = makeQuant(N, K, group, false, rng);
  const size_t wBytes = q.packed.size() + q.scales.size() * 2;
  // Rotate over enough copies that the weights come from DRAM, not the 50 MB L2.
  const int copies = int(std::max<size_t>(1, (256u << 20) / wBytes));
  std::vector<DevBuf<uint8_t>*> packs;
  std::vector<DevBuf<uint16_t>*> scs;
  for (int i = 0; i < copies; ++i) {
    packs.push_back(new DevBuf<uint8_t>(q.packed.size()));
    packs.back()->up(q.packed);
    scs.push_back(new DevBuf<uint16_t>(q.scales.size()));
    scs.back()->up(q.scales);
  }
  std::vector<uint16_t> hx(size_t(M) * K, toBits(0.5f, dt));
  std::mt19937 r2(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& v : hx) v = toBits(nd(r2), dt);
  DevBuf<uint16_t> x(hx.size()), y(size_t(M) * N);
  x.up(hx);
  WbInt4MatmulParams p{};
  p.x = x.p, p.y = y.p, p.xStride = K, p.yStride = N, p.m = M, p.n = N, p.k = K, p.groupSize = group, p.dtype = dt;
  int idx = 0;
  const Timing t = timeIt(
      [&] {
        p.qweight = packs[idx]->p;
        p.scales = scs[idx]->p;
        idx = (idx + 1) % copies;
        WB(gemm ? wbInt4Gemm(&p, nullptr) : wbInt4Gemv(&p, nullptr));
      },
      std::min(copies, 50), 20, std::max(10, copies / 20));
  const double bytes = double(wBytes) + 2.0 * M * (K + N);
  std::printf("TIME int4 %s %s M%d N%d K%d g%d: %.4f +- %.4f ms (n=%d)  %.0f GB/s  %.2f TFLOP/s\n",
              gemm ? "gemm" : "gemv", dt == WB_DTYPE_BF16 ? "bf16" : "fp16", M, N, K, group, t.mean, t.std, t.n,
              bytes / (t.mean * 1e-3) / 1e9, 2.0 * M * N * K / (t.mean * 1e-3) / 1e12);
  for (auto* b : packs) delete b;
  for (auto* b : scs) delete b;
}

// The training loss's softmax cross-entropy on one GPT-2 chunk (rows x 50,304 padded
// columns, in place); the logits drift as each call overwrites them with
// gradients in [-1, 1], which does not change the work.
void timeXent(int rows, WbDtype dt) {
  const int vocab = 50257, ld = 50304;
  std::vector<uint16_t> hl(size_t(rows) * ld);
  std::mt19937 r(5);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (auto& v : hl) v = toBits(nd(r), dt);
  std::vector<int64_t> ht(rows);
  for (auto& t : ht) t = int64_t(r() % vocab);
  DevBuf<uint16_t> logits(hl.size());
  logits.up(hl);
  DevBuf<int64_t> targets(rows);
  targets.up(ht);
  DevBuf<float> valid(rows), loss(rows);
  valid.up(std::vector<float>(rows, 1.f));
  WbSoftmaxXentParams p{};
  p.logits = logits.p, p.targets = targets.p, p.valid = valid.p, p.rowLoss = loss.p;
  p.rows = rows, p.vocab = vocab, p.ld = ld, p.writeGrad = 1, p.dtype = dt;
  const Timing t = timeIt([&] { WB(wbSoftmaxXent(&p, nullptr)); }, 3, 20, 5);
  std::printf("TIME softmax xent %s %dx%d: %.4f +- %.4f ms (n=%d)  %.0f GB/s (read + write)\n",
              dt == WB_DTYPE_BF16 ? "bf16" : "fp16", rows, ld, t.mean, t.std, t.n,
              4.0 * rows * ld / (t.mean * 1e-3) / 1e9);
}

void timeCopy() {
  const size_t bytes = size_t(1) << 30;
  DevBuf<uint8_t> a(bytes), b(bytes);
  CK(cudaMemset(a.p, 1, bytes));
  const Timing t = timeIt([&] { CK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice)); }, 3, 10, 1);
  std::printf("TIME d2d copy 1 GiB: %.4f +- %.4f ms  %.0f GB/s (read + write)\n", t.mean, t.std,
              2.0 * bytes / (t.mean * 1e-3) / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  bool check = true, timing = true, xentOnly = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--check-only")) timing = false;
    else if (!std::strcmp(argv[i], "--time-only")) check = false;
    else if (!std::strcmp(argv[i], "--time-xent")) check = false, xentOnly = true;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MB, smem/block optin %zu KB\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20, prop.sharedMemPerBlockOptin >> 10);
  std::mt19937 rng(1234);
  if (check) {
    std::printf("flash attention vs double reference (||out-ref||/||ref||):\n");
    for (WbDtype dt : {WB_DTYPE_BF16, WB_DTYPE_F16})
      for (bool causal : {true, false})
        for (int t : {1, 7, 64, 257, 1024}) checkFlash({t >= 1024 ? 1 : 2, 3, t, t, 64, causal, dt}, rng);
    checkFlash({2, 3, 7, 19, 64, true, WB_DTYPE_BF16}, rng);   // KV-cache shape: Tk > Tq
    checkFlash({1, 2, 1, 100, 64, true, WB_DTYPE_F16}, rng);   // one decode step
    checkFlash({2, 2, 130, 130, 128, true, WB_DTYPE_BF16}, rng);
    checkFlash({1, 2, 77, 77, 128, false, WB_DTYPE_F16}, rng);
    std::printf("int4 matmul vs double reference:\n");
    for (WbDtype dt : {WB_DTYPE_F16, WB_DTYPE_BF16})
      for (int g : {32, 64, 128})
        for (bool asym : {false, true}) {
          checkInt4(1, 768, 768, g, asym, dt, false, rng);
          checkInt4(5, 257, 1024, g, asym, dt, false, rng);
          checkInt4(37, 200, 768, g, asym, dt, true, rng);
          checkInt4(128, 768, 256, g, asym, dt, true, rng);
        }
    checkInt4(8, 2304, 3072, 128, false, WB_DTYPE_F16, false, rng);
    checkInt4(3, 96, 96, 32, false, WB_DTYPE_BF16, true, rng);  // K not a multiple of the 64-wide tile
  }
  if (xentOnly) {
    timeCopy();
    for (int rows : {4096, 16384}) timeXent(rows, WB_DTYPE_BF16);
    timing = false;
  }
  if (timing) {
    timeCopy();
    timeXent(16384, WB_DTYPE_BF16);
    for (bool causal : {true, false}) timeFlash(16, 12, 1024, 64, causal, WB_DTYPE_BF16);
    timeFlash(16, 12, 1024, 64, true, WB_DTYPE_F16);
    timeFlash(8, 16, 2048, 128, true, WB_DTYPE_BF16);
    for (auto [n, k] : {std::pair{2304, 768}, {4096, 1024}, {1024, 4096}, {4096, 4096}, {8192, 8192}}) {
      timeInt4(1, n, k, 128, WB_DTYPE_F16, false);
    }
    timeInt4(1, 4096, 4096, 128, WB_DTYPE_BF16, false);
    timeInt4(1, 4096, 4096, 32, WB_DTYPE_F16, false);
    timeInt4(8, 4096, 4096, 128, WB_DTYPE_F16, false);
    timeInt4(512, 4096, 4096, 128, WB_DTYPE_F16, true);
    timeInt4(4096, 4096, 4096, 128, WB_DTYPE_BF16, true);
  }
  std::printf("%d passed, %d failed\n", passes, failures);
  return failures ? 1 : 0;
}
