// Fused decode step; see fused_decode.h.
#include "core/model/fused_decode.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/model/int4_row_tiles.h"
#include "core/techniques/quantize.h"

#ifdef WB_HAVE_KERNELS
#include "kernels/decode/decode.h"
#include "kernels/decode/decode_persistent.h"
#endif

namespace wb {

namespace {
constexpr const char* kWhere = "fused decode";
}

#ifdef WB_HAVE_KERNELS

bool fusedDecodeBuilt() { return true; }

namespace {

// A GEMV weight as the kernels take it: fp16 rows [out, in], or int4 packed rows.
struct GemvWeight {
  torch::Tensor rows, packed, scales, zeros;
  int64_t groupSize = 0;
  int64_t bytes() const {
    auto b = [](const torch::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; };
    return b(rows) + b(packed) + b(scales) + b(zeros);
  }
};

// `w` is [in, out] (a Conv1D weight; the LM head passes wte.t()); `name` its parameter.
GemvWeight prepare(const torch::Tensor& w, bool int4, const FusedDecodeOptions& o, const std::string& name) {
  GemvWeight g;
  if (!int4) {
    g.rows = w.t().contiguous();
    return g;
  }
  QuantizedWeight q;
  const auto given = std::find_if(o.packed.begin(), o.packed.end(), [&](const QuantizedWeight& p) { return p.name == name; });
  if (given != o.packed.end()) {
    q = *given;
    if (q.spec.bits != 4 || q.in != w.size(0) || q.out != w.size(1))
      throw InputError(kWhere, name + ": the packed weight is not int4 of this shape");
  } else {
    QuantSpec spec;
    spec.bits = 4;
    spec.groupSize = o.groupSize;
    spec.symmetric = o.symmetric;
    q = quantizeWeight(w, spec, name);  // on the CPU, in fp32
  }
  if (q.groupSize != 32 && q.groupSize != 64 && q.groupSize != 128)
    throw InputError(kWhere, name + ": int4 group size must be 32, 64 or 128");
  const auto dev = w.device();
  g.packed = q.packed.to(dev);
  g.scales = q.scales.to(dev);
  if (q.zeros.defined()) g.zeros = q.zeros.to(dev);
  g.groupSize = q.groupSize;
  return g;
}

// The weight as both paths take it: the per-phase launches (WbDecodeLinearParams) and
// the persistent step's layer table (WbDecodeLayer).
WbDecodeWeight decodeWeight(const GemvWeight& w, const torch::Tensor& bias) {
  WbDecodeWeight d{};
  if (w.rows.defined()) {
    d.weight = w.rows.data_ptr();
  } else {
    d.qweight = w.packed.defined() ? w.packed.data_ptr<uint8_t>() : nullptr;  // none once in row tiles
    d.scales = w.scales.defined() ? w.scales.data_ptr() : nullptr;
    d.zeros = w.zeros.defined() ? w.zeros.data_ptr<uint8_t>() : nullptr;
  }
  d.groupSize = static_cast<int>(w.groupSize);  // also for a head kept only as row tiles
  d.bias = bias.defined() ? bias.data_ptr() : nullptr;
  return d;
}

// The carveout measured fastest on H100 (docs/PERF.md, "Block shape, carveout and
// one-pass LayerNorm"): 15% (a 32 KB split) for fp16 weights, 44% (100 KB) for int4,
// whose blocks also stage the input in the packed order; for the MLP-block step 28%
// (64 KB) where two of its attention blocks fit in that split: they must, or each layer
// loses ~5 us, because with one block an SM an H100 places only 15 clusters of 8 at once
// and GPT-2 medium's 16th head waits for a wave ("Local q, shared memory and the
// carveout", "Where the attention block's clusters land"); the key tiles grow with the
// cache, so at GPT-2 medium up to 512 slots. Every kernel of a step asks for the same one.
int defaultCarveout(bool int4, bool mlpBlocks, long long attentionBlockBytes) {
  if (mlpBlocks && attentionBlockBytes > 0 && 2 * attentionBlockBytes <= 64 * 1024) return 28;
  return int4 ? 44 : 15;
}

// The fields every GEMV launch of the step sets; each phase then adds its own input
// (LayerNorm, embedding, attention combine) and output (KV cache, argmax) fields.
WbDecodeLinearParams linearParams(WbDecodeInput in, WbDecodeOutput out, int64_t n, int64_t k, const GemvWeight& w,
                                  const torch::Tensor& bias, void* y, int programmaticLaunch, int sharedCarveout) {
  WbDecodeLinearParams p{};
  p.input = in;
  p.output = out;
  p.n = static_cast<int>(n);
  p.k = static_cast<int>(k);
  p.weight = decodeWeight(w, bias);
  p.y = y;
  p.programmaticLaunch = programmaticLaunch;
  p.sharedCarveout = sharedCarveout;
  return p;
}

void setLayerNorm(WbDecodeLinearParams& p, const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                  float eps) {
  p.x = x.data_ptr();
  p.lnWeight = w.data_ptr();
  p.lnBias = b.data_ptr();
  p.lnEps = eps;
}

void check(WbStatus s) {
  if (s != WB_STATUS_OK) throw RunError(kWhere, wbKernelsLastError());
}

// A LayerNorm folded into the fp16 GEMV after it (FusedDecodeOptions::layerNormFolded):
// per row, scale = W.gamma and shift = W.beta + bias, in fp32.
struct FoldedNorm {
  torch::Tensor scale, shift;
};

// In slices of rows, so that the fp32 copy a slice needs stays small (the LM head's whole
// copy would be 4 * vocab * E bytes).
FoldedNorm foldNorm(const GemvWeight& w, const torch::Tensor& gamma, const torch::Tensor& beta,
                    const torch::Tensor& bias) {
  constexpr int64_t kSliceRows = 4096;
  const int64_t n = w.rows.size(0);
  const auto g = gamma.to(torch::kFloat32), b = beta.to(torch::kFloat32);
  FoldedNorm f;
  f.scale = torch::empty({n}, g.options());
  f.shift = bias.defined() ? bias.to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true)
                            : torch::zeros({n}, g.options());
  for (int64_t r0 = 0; r0 < n; r0 += kSliceRows) {
    const int64_t len = std::min(kSliceRows, n - r0);
    const auto rows = w.rows.narrow(0, r0, len).to(torch::kFloat32);
    f.scale.narrow(0, r0, len).copy_(rows.mv(g));
    f.shift.narrow(0, r0, len).add_(rows.mv(b));
  }
  return f;
}

void setFolded(WbDecodeLinearParams& p, const FoldedNorm& f) {
  if (!f.scale.defined()) return;
  p.lnFolded = 1;
  p.lnRowScale = f.scale.data_ptr<float>();
  p.lnRowShift = f.shift.data_ptr<float>();
}

// The kernels' view of row tiles (one copy of the weight's codes on the device).
WbDecodeRowTiles rowTilesParams(const Int4RowTiles& t, int blocksPerSm) {
  WbDecodeRowTiles r{};
  if (!t.codes.defined()) return r;
  r.codes = reinterpret_cast<const uint32_t*>(t.codes.data_ptr<int32_t>());
  r.scales = reinterpret_cast<const uint32_t*>(t.scales.data_ptr<int32_t>());
  r.zeros = t.zeros.defined() ? reinterpret_cast<const uint16_t*>(t.zeros.data_ptr<int16_t>()) : nullptr;
  r.blocksPerSm = blocksPerSm;
  return r;
}

int64_t rowTilesBytes(const Int4RowTiles& t) {
  int64_t b = 0;
  for (const auto* x : {&t.codes, &t.scales, &t.zeros})
    if (x->defined()) b += x->numel() * static_cast<int64_t>(x->element_size());
  return b;
}

// The tiles take the weight's place: it keeps only its group size (one copy of the
// codes, scales and zero points on the device).
Int4RowTiles intoRowTiles(GemvWeight& w) {
  Int4RowTiles t = packInt4RowTiles(w.packed, w.scales, w.zeros);
  w.packed = w.scales = w.zeros = torch::Tensor();
  return t;
}

struct Layer {
  torch::Tensor ln1w, ln1b, ln2w, ln2b, qkvBias, projBias, fcBias, mprojBias;
  GemvWeight qkv, proj, fc, mproj;
  Int4RowTiles fcTiles;  // with the MLP blocks and FusedDecodeOptions::mlpFcRowTiles
  FoldedNorm qkvNorm, fcNorm;  // layerNormFolded with fp16 weights
  float scale = 1.f;
};

}  // namespace

struct FusedDecoder::Impl {
  Gpt2 model{nullptr};
  FusedDecodeOptions options;
  std::vector<Layer> layers;
  torch::Tensor lnfW, lnfB, wte, wpe;
  GemvWeight head;  // an int4 head in row tiles keeps only its group size here
  Int4RowTiles headTiles;
  FoldedNorm headNorm;
  torch::Tensor argmaxBest;  // options.argmaxPacked: the key every block of the LM head raises
  torch::Tensor residual, q, hidden, partO, partMl, headPartials, logits, argmaxValues, argmaxIndices, argmaxCounter;
  bool blockOn = false;  // the attention-block kernels (options.attentionBlock, where they run)
  // The MLP blocks (options.mlpBlock, where they run): the residual after each attention
  // block (the MLP block's input; `residual` holds the one after each MLP), and per layer
  // the attention block's head sum [L, E] and the MLP block's sums [L, copies, E], each
  // zeroed by the next layer's MLP block once consumed (so per layer, not one buffer).
  bool mlpOn = false;
  torch::Tensor residualMid, headSums, mlpSums;
  long long attentionBlockBytes = 0;  // one attention block's shared memory (the carveout follows it)
  int64_t capacity = 0, embd = 0, heads = 0, inner = 0, vocab = 0, splits = 0;
  float eps = 1e-5f;
  int64_t weightBytes = 0;
  // The persistent step: its parameters, the device copy of the layer table (rebuilt
  // when the caches it points at change) and the grid barrier's counters.
  bool persistentTried = false, persistentOn = false;
  WbDecodePersistentParams persistent{};
  torch::Tensor layerTable, barrier;
  std::vector<const void*> tableCaches;

  bool stepPersistent(KvCache& cache, torch::Tensor& ids, torch::Tensor& out, cudaStream_t stream);
  void stepAttentionBlocks(KvCache& cache, torch::Tensor& ids, int pdl, int carveout, cudaStream_t stream);
  void stepMlpBlocks(KvCache& cache, torch::Tensor& ids, int pdl, int carveout, cudaStream_t stream);
  WbDecodeLinearParams qkvParams(size_t i, KvCache& cache, torch::Tensor& ids, int pdl, int carveout) const;
  // Launches a GEMV of the step with the step-wide choices its fields do not carry.
  void linear(WbDecodeLinearParams p, cudaStream_t stream) const {
    p.int4Mma = options.int4TensorCores ? 1 : 0;
    check(wbDecodeLinear(&p, stream));
  }
};

// Layer i's (embedding +) ln_1 + c_attn, q to a buffer and k/v into the cache at the
// step's position: the per-phase kernel's launch, and the attention block's first part.
WbDecodeLinearParams FusedDecoder::Impl::qkvParams(size_t i, KvCache& cache, torch::Tensor& ids, int pdl,
                                                   int carveout) const {
  const Layer& l = layers[i];
  const int e = static_cast<int>(embd);
  WbDecodeLinearParams a = linearParams(i == 0 ? WB_DECODE_IN_EMBED : WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_QKV, 3 * e,
                                        e, l.qkv, l.qkvBias, q.data_ptr(), pdl, carveout);
  setLayerNorm(a, residual, l.ln1w, l.ln1b, eps);
  a.lnTwoPass = options.layerNormTwoPass ? 1 : 0;
  a.wte = wte.data_ptr();
  a.wpe = wpe.data_ptr();
  a.token = ids.data_ptr<int64_t>();
  a.residual = residual.data_ptr();
  a.position = cache.position.data_ptr<int64_t>();
  a.kCache = cache.keys[i].data_ptr();
  a.vCache = cache.values[i].data_ptr();
  a.capacity = static_cast<int>(capacity);
  a.heads = static_cast<int>(heads);
  a.headDim = 64;
  return a;
}

// Per layer: (embedding +) ln_1 + c_attn + attention + attn.c_proj's per-head partials
// in one cluster launch; ln_2 + c_fc + GELU over the residual plus those partials;
// mlp.c_proj, adding both into the residual.
void FusedDecoder::Impl::stepAttentionBlocks(KvCache& cache, torch::Tensor& ids, int pdl, int carveout,
                                             cudaStream_t stream) {
  const int e = static_cast<int>(embd);
  const int twoPass = options.layerNormTwoPass ? 1 : 0;
  auto* partials = headPartials.data_ptr<float>();
  const bool atomic = options.attentionBlockAtomic;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    WbDecodeAttentionBlockParams ab{};
    ab.qkv = qkvParams(i, cache, ids, pdl, carveout);  // not folded: the cluster kernel normalises its input
    ab.proj = decodeWeight(l.proj, torch::Tensor());
    ab.headPartials = partials;
    ab.accumulate = atomic ? 1 : 0;
    ab.scale = l.scale;
    check(wbDecodeAttentionBlock(&ab, stream));
    WbDecodeLinearParams fc = linearParams(WB_DECODE_IN_HEADS, WB_DECODE_OUT_GELU, inner, e, l.fc, l.fcBias,
                                           hidden.data_ptr(), pdl, carveout);
    setLayerNorm(fc, residual, l.ln2w, l.ln2b, eps);
    fc.lnTwoPass = twoPass;
    fc.headPartials = partials;
    fc.headBias = l.projBias.data_ptr();
    fc.headCount = atomic ? 1 : static_cast<int>(heads);
    linear(fc, stream);
    WbDecodeLinearParams mp = linearParams(WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL, e, inner, l.mproj, l.mprojBias,
                                           residual.data_ptr(), pdl, carveout);
    mp.x = hidden.data_ptr();
    mp.headPartials = partials;
    mp.headBias = l.projBias.data_ptr();
    mp.headCount = atomic ? 1 : static_cast<int>(heads);
    mp.headClear = atomic ? 1 : 0;
    linear(mp, stream);
  }
}

// Per layer two launches: the attention block over the residual plus the previous MLP
// block's sums (the embedding in the first layer), which stores that residual to
// residualMid and adds its heads into headSums[i]; the MLP block over residualMid plus
// those heads, which stores that residual to `residual` and adds into mlpSums[i]. Layer
// i's MLP block zeroes layer i - 1's sums (layer L - 1's, the previous step's, in the
// first): the last kernels to read them have finished by its wait.
void FusedDecoder::Impl::stepMlpBlocks(KvCache& cache, torch::Tensor& ids, int pdl, int carveout, cudaStream_t stream) {
  const int e = static_cast<int>(embd);
  const size_t layerCount = layers.size();
  for (size_t i = 0; i < layerCount; ++i) {
    const Layer& l = layers[i];
    const size_t prev = (i + layerCount - 1) % layerCount;
    WbDecodeAttentionBlockParams ab{};
    ab.qkv = qkvParams(i, cache, ids, pdl, carveout);
    ab.qkv.residual = residualMid.data_ptr();  // the embedding (first layer) or the residual it builds
    if (i > 0) {
      ab.qkv.input = WB_DECODE_IN_HEADS;
      ab.qkv.headPartials = mlpSums[static_cast<int64_t>(prev)].data_ptr<float>();
      ab.qkv.headBias = layers[prev].mprojBias.data_ptr();
      ab.qkv.headCount = WB_DECODE_MLP_SUMS;
    }
    ab.proj = decodeWeight(l.proj, torch::Tensor());
    ab.headPartials = headSums[static_cast<int64_t>(i)].data_ptr<float>();
    ab.accumulate = 1;
    ab.scale = l.scale;
    check(wbDecodeAttentionBlock(&ab, stream));
    WbDecodeMlpBlockParams mb{};
    mb.fc = linearParams(WB_DECODE_IN_HEADS, WB_DECODE_OUT_GELU, inner, e, l.fc, l.fcBias, nullptr, pdl, carveout);
    setLayerNorm(mb.fc, residualMid, l.ln2w, l.ln2b, eps);
    mb.fc.headPartials = ab.headPartials;
    mb.fc.headBias = l.projBias.data_ptr();
    mb.fc.headCount = 1;
    mb.fc.residual = residual.data_ptr();
    mb.proj = decodeWeight(l.mproj, torch::Tensor());
    mb.accumulate = mlpSums[static_cast<int64_t>(i)].data_ptr<float>();
    mb.clearSums = mlpSums[static_cast<int64_t>(prev)].data_ptr<float>();
    mb.clearHeads = headSums[static_cast<int64_t>(prev)].data_ptr<float>();
    mb.fcTiles = rowTilesParams(l.fcTiles, 0);
    check(wbDecodeMlpBlock(&mb, stream));
  }
}

// Returns false when the persistent kernel cannot run here (the caller then launches
// the per-phase kernels); the first call decides, before any graph capture.
bool FusedDecoder::Impl::stepPersistent(KvCache& cache, torch::Tensor& ids, torch::Tensor& out, cudaStream_t stream) {
  auto& p = persistent;
  std::vector<const void*> caches;
  for (size_t i = 0; i < layers.size(); ++i) {
    caches.push_back(cache.keys[i].data_ptr());
    caches.push_back(cache.values[i].data_ptr());
  }
  if (caches != tableCaches) {
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &capturing) != cudaSuccess || capturing != cudaStreamCaptureStatusNone)
      throw RunError(kWhere, "the KV cache moved while a graph was being captured", "warm up with this cache first");
    std::vector<WbDecodeLayer> table(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      const Layer& l = layers[i];
      WbDecodeLayer& t = table[i];
      t.ln1Weight = l.ln1w.data_ptr();
      t.ln1Bias = l.ln1b.data_ptr();
      t.ln2Weight = l.ln2w.data_ptr();
      t.ln2Bias = l.ln2b.data_ptr();
      t.qkv = decodeWeight(l.qkv, l.qkvBias);
      t.proj = decodeWeight(l.proj, l.projBias);
      t.fc = decodeWeight(l.fc, l.fcBias);
      t.mproj = decodeWeight(l.mproj, l.mprojBias);
      t.kCache = cache.keys[i].data_ptr();
      t.vCache = cache.values[i].data_ptr();
      t.scale = l.scale;
    }
    const auto bytes = static_cast<int64_t>(table.size() * sizeof(WbDecodeLayer));
    layerTable = torch::from_blob(table.data(), {bytes}, torch::kUInt8).to(residual.device());  // synchronous
    tableCaches = caches;
  }
  p.layers = reinterpret_cast<const WbDecodeLayer*>(layerTable.data_ptr<uint8_t>());
  p.token = ids.data_ptr<int64_t>();
  p.position = cache.position.data_ptr<int64_t>();
  p.tokens = out.data_ptr<int64_t>();
  if (!persistentTried) {
    persistentTried = true;
    p.nLayer = static_cast<int>(layers.size());
    p.embd = static_cast<int>(embd);
    p.inner = static_cast<int>(inner);
    p.heads = static_cast<int>(heads);
    p.vocab = static_cast<int>(vocab);
    p.capacity = static_cast<int>(capacity);
    p.layersInt4 = options.int4 ? 1 : 0;
    p.lnEps = eps;
    p.wte = wte.data_ptr();
    p.wpe = wpe.data_ptr();
    p.lnfWeight = lnfW.data_ptr();
    p.lnfBias = lnfB.data_ptr();
    p.head = decodeWeight(head, torch::Tensor());
    p.residual = residual.data_ptr();
    p.q = q.data_ptr();
    p.hidden = hidden.data_ptr();
    p.logits = logits.data_ptr();
    p.partO = partO.data_ptr<float>();
    p.partMl = partMl.data_ptr<float>();
    p.argmaxValues = argmaxValues.data_ptr<float>();
    p.argmaxIndices = argmaxIndices.data_ptr<int>();
    p.argmaxCounter = reinterpret_cast<unsigned*>(argmaxCounter.data_ptr<int>());
    p.argmaxSlots = static_cast<int>(argmaxValues.numel());
    barrier = torch::zeros({2}, torch::TensorOptions().dtype(torch::kLong).device(residual.device()));
    p.barrier = reinterpret_cast<unsigned long long*>(barrier.data_ptr<int64_t>());
    // Unsupported here (no cooperative launch, shapes): the per-phase kernels instead.
    persistentOn = wbDecodePersistentSetup(&p) == WB_STATUS_OK && wbDecodePersistent(&p, stream) == WB_STATUS_OK;
    return persistentOn;
  }
  check(wbDecodePersistent(&p, stream));
  return true;
}

FusedDecoder::FusedDecoder(Gpt2 model, int64_t capacity, const FusedDecodeOptions& o)
    : impl_(std::make_unique<Impl>()) {
  const auto& c = model->config();
  const auto param = model->transformer->wte->weight;
  if (!param.is_cuda() || param.scalar_type() != torch::kHalf)
    throw InputError(kWhere, "the model must hold fp16 weights on a CUDA device", "decode with --dtype fp16 on cuda");
  if (c.activation != "gelu_new" && c.activation != "gelu_pytorch_tanh")
    throw InputError(kWhere, "activation " + c.activation + " (the kernels apply tanh-GELU)");
  if (capacity < 1 || capacity > c.nPositions) throw InputError(kWhere, "capacity must be in [1, n_positions]");
  if (c.nEmbd % 32 != 0 || c.innerDim() % 32 != 0) throw InputError(kWhere, "widths must be multiples of 32");
  if (o.sharedCarveout < -1 || o.sharedCarveout > 100)
    throw InputError(kWhere, "sharedCarveout " + std::to_string(o.sharedCarveout) + " is not a carveout",
                     "-1 (the weight format's default), 0 (no request) or 1..100 percent");
  torch::NoGradGuard noGrad;
  auto& m = *impl_;
  m.model = model;
  m.options = o;
  m.capacity = capacity;
  m.embd = c.nEmbd;
  m.heads = c.nHead;
  m.inner = c.innerDim();
  m.vocab = c.vocabSize;
  m.eps = static_cast<float>(c.layerNormEpsilon);
  m.splits = wbDecodeAttentionSplits(static_cast<int>(capacity));
  auto half = [](const torch::Tensor& t) { return t.detach().to(torch::kHalf).contiguous(); };
  int64_t index = 0;
  for (const auto& item : *model->transformer->h) {
    auto block = item->as<Gpt2Block>();
    const auto& attn = block->attn;
    if (attn->headCount() != c.nHead || attn->headDim() != 64)
      throw InputError(kWhere, "layer " + std::to_string(index) + " has pruned heads or a head dim other than 64");
    if (attn->c_attn->adapter || attn->c_proj->adapter || block->mlp->c_fc->adapter || block->mlp->c_proj->adapter)
      throw InputError(kWhere, "adapters (LoRA) are not fused; merge them first");
    Layer l;
    l.ln1w = half(block->ln_1->weight);
    l.ln1b = half(block->ln_1->bias);
    l.ln2w = half(block->ln_2->weight);
    l.ln2b = half(block->ln_2->bias);
    const std::string prefix = "transformer.h." + std::to_string(index) + ".";
    l.qkv = prepare(attn->c_attn->weight.detach(), o.int4, o, prefix + "attn.c_attn.weight");
    l.proj = prepare(attn->c_proj->weight.detach(), o.int4, o, prefix + "attn.c_proj.weight");
    l.fc = prepare(block->mlp->c_fc->weight.detach(), o.int4, o, prefix + "mlp.c_fc.weight");
    l.mproj = prepare(block->mlp->c_proj->weight.detach(), o.int4, o, prefix + "mlp.c_proj.weight");
    l.qkvBias = half(attn->c_attn->bias);
    l.projBias = half(attn->c_proj->bias);
    l.fcBias = half(block->mlp->c_fc->bias);
    l.mprojBias = half(block->mlp->c_proj->bias);
    double scale = c.scaleAttnWeights ? 1.0 / std::sqrt(64.0) : 1.0;
    if (c.scaleAttnByInverseLayerIdx) scale /= static_cast<double>(index + 1);
    l.scale = static_cast<float>(scale);
    if (o.layerNormFolded && !o.int4) {
      l.qkvNorm = foldNorm(l.qkv, l.ln1w, l.ln1b, l.qkvBias);
      l.fcNorm = foldNorm(l.fc, l.ln2w, l.ln2b, l.fcBias);
    }
    for (const auto* w : {&l.qkv, &l.proj, &l.fc, &l.mproj}) m.weightBytes += w->bytes();
    for (const auto* t : {&l.ln1w, &l.ln1b, &l.ln2w, &l.ln2b, &l.qkvBias, &l.projBias, &l.fcBias, &l.mprojBias})
      m.weightBytes += t->numel() * 2;
    m.layers.push_back(std::move(l));
    ++index;
  }
  m.lnfW = half(model->transformer->ln_f->weight);
  m.lnfB = half(model->transformer->ln_f->bias);
  m.wte = half(model->transformer->wte->weight);
  m.wpe = half(model->transformer->wpe->weight);
  const auto headWeight = c.tieWordEmbeddings ? model->transformer->wte->weight : model->lmHeadWeight;  // [vocab, E]
  m.head = prepare(headWeight.detach().t(), o.int4LmHead, o,
                   c.tieWordEmbeddings ? "transformer.wte.weight" : "lm_head.weight");
  if (o.lmHeadRowTiles < 0 || o.lmHeadRowTiles > 3)
    throw InputError(kWhere, "lmHeadRowTiles " + std::to_string(o.lmHeadRowTiles) + " is not 0..3 blocks an SM");
  const int64_t headChunks = m.embd / 64;
  if (o.lmHeadRowTiles > 0 && !o.persistent && m.head.packed.defined() && m.head.groupSize == 128 &&
      o.int4TensorCores && m.embd % 128 == 0 && (headChunks == 12 || headChunks == 16 || headChunks == 20)) {
    m.headTiles = intoRowTiles(m.head);
  }
  m.weightBytes += m.head.bytes() + rowTilesBytes(m.headTiles) + 4 * m.embd;
  if (o.layerNormFolded && !o.int4LmHead) m.headNorm = foldNorm(m.head, m.lnfW, m.lnfB, torch::Tensor());
  const auto dev = param.device();
  const auto h16 = torch::TensorOptions().dtype(torch::kHalf).device(dev);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
  m.residual = torch::zeros({m.embd}, h16);
  m.q = torch::zeros({m.embd}, h16);
  m.hidden = torch::zeros({m.inner}, h16);
  m.partO = torch::zeros({m.heads, m.splits, 64}, f32);
  m.partMl = torch::zeros({m.heads, m.splits, 2}, f32);
  m.blockOn = o.attentionBlock && !o.persistent &&
              wbDecodeAttentionBlockSupported(static_cast<int>(m.heads), static_cast<int>(capacity));
  if (m.blockOn) m.headPartials = torch::zeros({m.heads, m.embd}, f32);
  // Two layers at least: a layer's MLP block zeroes the previous layer's sums.
  const bool mlpWeights = std::all_of(m.layers.begin(), m.layers.end(), [&](const Layer& l) {
    return l.fc.packed.defined() && l.mproj.packed.defined() && l.mproj.groupSize == l.fc.groupSize &&
           wbDecodeMlpBlockSupported(static_cast<int>(m.embd), static_cast<int>(m.inner), static_cast<int>(l.fc.groupSize));
  });
  m.mlpOn = m.blockOn && o.attentionBlockAtomic && o.mlpBlock && o.int4TensorCores && !o.layerNormTwoPass &&
            m.layers.size() >= 2 && mlpWeights;
  if (m.mlpOn && o.mlpFcRowTiles) {
    for (auto& l : m.layers) {  // the same bytes in another order; only the MLP blocks read c_fc
      m.weightBytes -= l.fc.bytes();
      l.fcTiles = intoRowTiles(l.fc);
      m.weightBytes += rowTilesBytes(l.fcTiles);
    }
  }
  if (m.mlpOn) {
    m.attentionBlockBytes =
        wbDecodeAttentionBlockSharedBytes(static_cast<int>(m.embd), static_cast<int>(capacity), o.int4 ? 1 : 0);
    const auto layerCount = static_cast<int64_t>(m.layers.size());
    m.residualMid = torch::zeros({m.embd}, h16);
    m.headSums = torch::zeros({layerCount, m.embd}, f32);
    m.mlpSums = torch::zeros({layerCount, WB_DECODE_MLP_SUMS, m.embd}, f32);
  }
  m.logits = torch::zeros({m.vocab}, h16);
  const int64_t slots = 4096;
  m.argmaxValues = torch::zeros({slots}, f32);
  m.argmaxIndices = torch::zeros({slots}, torch::TensorOptions().dtype(torch::kInt32).device(dev));
  m.argmaxCounter = torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt32).device(dev));
  if (o.argmaxPacked) m.argmaxBest = torch::zeros({1}, torch::TensorOptions().dtype(torch::kLong).device(dev));
}

FusedDecoder::~FusedDecoder() = default;

const torch::Tensor& FusedDecoder::logits() const { return impl_->logits; }
int64_t FusedDecoder::weightBytes() const { return impl_->weightBytes; }
bool FusedDecoder::persistentActive() const { return impl_->persistentOn; }
bool FusedDecoder::attentionBlockActive() const { return impl_->blockOn; }
bool FusedDecoder::mlpBlockActive() const { return impl_->mlpOn; }
bool FusedDecoder::lmHeadTilesActive() const { return impl_->headTiles.codes.defined(); }

void FusedDecoder::step(KvCache& cache, torch::Tensor& ids, torch::Tensor& out) {
  auto& m = *impl_;
  if (!cache.staticPosition() || cache.capacity != m.capacity || static_cast<int64_t>(cache.keys.size()) !=
                                                                     static_cast<int64_t>(m.layers.size()))
    throw InputError(kWhere, "needs the static-position cache of this model and capacity");
  if (ids.scalar_type() != torch::kLong || ids.numel() != 1 || out.scalar_type() != torch::kLong ||
      out.numel() < m.capacity || !out.is_contiguous())
    throw InputError(kWhere, "ids must be int64 [1, 1] and out int64 [capacity]");
  const auto dev = m.residual.device();
  compat::CudaDeviceGuard guard(dev);
  const auto stream = compat::currentCudaStream(dev);
  for (size_t i = 0; i < m.layers.size(); ++i)
    if (cache.keys[i].scalar_type() != torch::kHalf || !cache.keys[i].is_contiguous() ||
        !cache.values[i].is_contiguous())
      throw InputError(kWhere, "the KV cache must be contiguous fp16");
  if (m.options.persistent && (m.persistentOn || !m.persistentTried) && m.stepPersistent(cache, ids, out, stream)) {
    cache.length += 1;
    return;
  }
  const int pdl = m.options.programmaticLaunch ? 1 : 0;
  const int carveout = m.options.sharedCarveout >= 0 ? m.options.sharedCarveout
                                                     : defaultCarveout(m.options.int4, m.mlpOn, m.attentionBlockBytes);
  const auto* pos = cache.position.data_ptr<int64_t>();
  const int e = static_cast<int>(m.embd);
  const int twoPass = m.options.layerNormTwoPass ? 1 : 0;
  if (m.mlpOn) {
    m.stepMlpBlocks(cache, ids, pdl, carveout, stream);
  } else if (m.blockOn) {
    m.stepAttentionBlocks(cache, ids, pdl, carveout, stream);
  } else {
    for (size_t i = 0; i < m.layers.size(); ++i) {
      const Layer& l = m.layers[i];
      const auto& kc = cache.keys[i];
      const auto& vc = cache.values[i];
      // 1. (embedding +) ln_1 + c_attn; q to a buffer, k/v into the cache.
      WbDecodeLinearParams a = m.qkvParams(i, cache, ids, pdl, carveout);
      setFolded(a, l.qkvNorm);
      m.linear(a, stream);
      // 2. attention of q over slots 0 .. position, in 64-key splits.
      WbDecodeAttentionParams at{};
      at.q = m.q.data_ptr();
      at.kCache = kc.data_ptr();
      at.vCache = vc.data_ptr();
      at.position = pos;
      at.partO = m.partO.data_ptr<float>();
      at.partMl = m.partMl.data_ptr<float>();
      at.heads = static_cast<int>(m.heads);
      at.headDim = 64;
      at.capacity = static_cast<int>(m.capacity);
      at.scale = l.scale;
      at.programmaticLaunch = pdl;
      at.sharedCarveout = carveout;
      check(wbDecodeAttention(&at, stream));
      // 3. combine the splits + attn.c_proj + residual.
      WbDecodeLinearParams pr = linearParams(WB_DECODE_IN_ATTENTION, WB_DECODE_OUT_RESIDUAL, e, e, l.proj, l.projBias,
                                             m.residual.data_ptr(), pdl, carveout);
      pr.attnO = m.partO.data_ptr<float>();
      pr.attnMl = m.partMl.data_ptr<float>();
      pr.attnSplits = static_cast<int>(m.splits);
      pr.position = pos;
      pr.heads = static_cast<int>(m.heads);
      pr.headDim = 64;
      m.linear(pr, stream);
      // 4. ln_2 + c_fc + GELU.
      WbDecodeLinearParams fc = linearParams(WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_GELU, m.inner, e, l.fc, l.fcBias,
                                             m.hidden.data_ptr(), pdl, carveout);
      setLayerNorm(fc, m.residual, l.ln2w, l.ln2b, m.eps);
      fc.lnTwoPass = twoPass;
      setFolded(fc, l.fcNorm);
      m.linear(fc, stream);
      // 5. mlp.c_proj + residual.
      WbDecodeLinearParams mp = linearParams(WB_DECODE_IN_PLAIN, WB_DECODE_OUT_RESIDUAL, e, m.inner, l.mproj,
                                             l.mprojBias, m.residual.data_ptr(), pdl, carveout);
      mp.x = m.hidden.data_ptr();
      m.linear(mp, stream);
    }
  }
  // ln_f + LM head + argmax; feeds the token back and advances the position.
  WbDecodeLinearParams h =
      linearParams(WB_DECODE_IN_LAYERNORM, WB_DECODE_OUT_ARGMAX, m.vocab, e, m.head, {}, m.logits.data_ptr(), pdl,
                   carveout);
  setLayerNorm(h, m.residual, m.lnfW, m.lnfB, m.eps);
  h.lnTwoPass = twoPass;
  if (m.mlpOn) {  // the last MLP block's sums are still to be added (and the LayerNorm not folded)
    h.input = WB_DECODE_IN_HEADS;
    h.headPartials = m.mlpSums[static_cast<int64_t>(m.layers.size()) - 1].data_ptr<float>();
    h.headBias = m.layers.back().mprojBias.data_ptr();
    h.headCount = WB_DECODE_MLP_SUMS;
  } else {
    setFolded(h, m.headNorm);
  }
  h.position = pos;
  h.capacity = static_cast<int>(m.capacity);
  h.argmaxValues = m.argmaxValues.data_ptr<float>();
  h.argmaxIndices = m.argmaxIndices.data_ptr<int>();
  h.argmaxCounter = reinterpret_cast<unsigned*>(m.argmaxCounter.data_ptr<int>());
  h.argmaxSlots = static_cast<int>(m.argmaxValues.numel());
  if (m.argmaxBest.defined()) h.argmaxBest = reinterpret_cast<unsigned long long*>(m.argmaxBest.data_ptr<int64_t>());
  h.rowTiles = rowTilesParams(m.headTiles, m.options.lmHeadRowTiles);
  h.nextToken = ids.data_ptr<int64_t>();
  h.tokens = out.data_ptr<int64_t>();
  m.linear(h, stream);
  cache.length += 1;  // host-side count; stale under graph replay, as for the torch step
}

#else

bool fusedDecodeBuilt() { return false; }

struct FusedDecoder::Impl {
  torch::Tensor logits;
};

FusedDecoder::FusedDecoder(Gpt2, int64_t, const FusedDecodeOptions&) {
  throw InputError(kWhere, "built without CUDA kernels (LibTorch " + compat::torchVersion() + ")",
                   "build against CUDA LibTorch with nvcc (cmake --preset cuda)");
}
FusedDecoder::~FusedDecoder() = default;
void FusedDecoder::step(KvCache&, torch::Tensor&, torch::Tensor&) {}
const torch::Tensor& FusedDecoder::logits() const { return impl_->logits; }
int64_t FusedDecoder::weightBytes() const { return 0; }
bool FusedDecoder::persistentActive() const { return false; }
bool FusedDecoder::attentionBlockActive() const { return false; }
bool FusedDecoder::mlpBlockActive() const { return false; }
bool FusedDecoder::lmHeadTilesActive() const { return false; }

#endif

}  // namespace wb
