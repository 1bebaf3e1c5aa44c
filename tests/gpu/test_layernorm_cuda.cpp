// The fused LayerNorm (kernels/layernorm via layernorm_cuda.h / fused_layer_norm.h)
// against LibTorch's fp32 layer_norm. Tolerances: the 16-bit output within one unit in
// the last place of the rounded fp32 reference (rel 2^-7 bf16, 2^-10 fp16) + 1e-4 abs
// (the fp32 reduction order alone moves y by up to ~4e-5 on rows of scale 0.1 and
// offset ~3, where rstd ~ 10 magnifies a 1e-6 difference in the mean);
// mean 1e-6 abs + 1e-5 rel, rstd 1e-5 rel; dx 1e-5 abs + 1e-4 rel; dweight, dbias
// within 1e-4 of the reference's norm; a 2-layer GPT-2 under bf16 autocast gives the
// unfused loss within 2e-3 rel and each parameter gradient within 2e-2 of its norm.
#include "core/errors.h"
#include "core/kernels_bridge/layernorm_cuda.h"
#include "core/model/fused_layer_norm.h"
#include "core/model/gpt2.h"
#include "tests/support/torch_support.h"

#include <QtTest>

using namespace wb;

namespace {

const torch::Device kCuda(torch::kCUDA, 0);
constexpr double kEps = 1e-5;

struct Inputs {
  torch::Tensor x, weight, bias;
};

// Rows with a non-zero mean and unequal scales, so centring and scaling both matter.
Inputs makeInputs(int64_t rows, int64_t cols) {
  Inputs in;
  const auto f32 = torch::TensorOptions().device(kCuda).dtype(torch::kFloat32);
  in.x = torch::randn({rows, cols}, f32) * (torch::rand({rows, 1}, f32) * 3.0 + 0.1) + torch::randn({rows, 1}, f32);
  in.weight = 1.0 + 0.2 * torch::randn({cols}, f32);
  in.bias = 0.2 * torch::randn({cols}, f32);
  return in;
}

void checkClose(const torch::Tensor& got, const torch::Tensor& want, double atol, double rtol, const std::string& what) {
  const auto r = test::allClose(got, want, atol, rtol);
  QVERIFY2(r.ok, (what + ": " + r.message).c_str());
}

// ||got - want|| <= rtol * ||want||.
void checkNormClose(const torch::Tensor& got, const torch::Tensor& want, double rtol, const std::string& what) {
  const auto g = got.to(torch::kCPU, torch::kFloat64), w = want.to(torch::kCPU, torch::kFloat64);
  const double err = (g - w).norm().item<double>(), ref = w.norm().item<double>();
  QVERIFY2(err <= rtol * ref, (what + ": ||diff|| " + std::to_string(err) + ", ||ref|| " + std::to_string(ref)).c_str());
}

template <typename F>
std::string inputErrorOf(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

// Loss and a copy of every parameter gradient of one forward/backward under bf16 autocast.
std::pair<double, std::vector<torch::Tensor>> lossAndGrads(Gpt2& m, const torch::Tensor& ids) {
  m->zero_grad();
  torch::Tensor loss;
  {
    compat::AutocastGuard amp(torch::kCUDA, torch::kBFloat16);
    const auto logits = m->forward(ids);
    loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32),
                                                ids.reshape({-1}));
  }
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : m->parameters()) grads.push_back(p.grad().clone());
  return {loss.item<double>(), grads};
}

}  // namespace

class TestLayerNormCuda : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void init() {
    if (!torch::cuda::is_available()) QSKIP("no CUDA device");
    if (!layerNormKernelBuilt()) QSKIP("built without CUDA kernels");
  }

  void matchesReference_data() {
    QTest::addColumn<int>("rows");
    QTest::addColumn<int>("cols");
    QTest::addColumn<bool>("bf16");
    // Rows per block are 8 (cols <= 1024) or 2: 1 and 13 leave blocks part-empty; 4500
    // and 1100 need more blocks than the backward's 528 partial rows (a grid-stride loop).
    const std::vector<std::pair<int, int>> shapes{{1, 768},   {13, 768},  {300, 768}, {4500, 768}, {9, 1024},
                                                  {5, 128},   {7, 640},   {11, 1152}, {3, 2048},   {1100, 2048},
                                                  {7, 4096}};
    for (bool bf16 : {true, false})
      for (const auto& [rows, cols] : shapes)
        QTest::newRow((std::to_string(rows) + "x" + std::to_string(cols) + (bf16 ? " bf16" : " fp16")).c_str())
            << rows << cols << bf16;
  }
  void matchesReference() {
    QFETCH(int, rows);
    QFETCH(int, cols);
    QFETCH(bool, bf16);
    const auto dt = bf16 ? torch::kBFloat16 : torch::kHalf;
    torch::manual_seed(rows * 7 + cols);
    const Inputs in = makeInputs(rows, cols);
    QVERIFY(layerNormKernelFits(in.x, in.weight));

    // Forward against fp32 layer_norm rounded once to the dtype.
    const auto ref = at::native_layer_norm(in.x, {cols}, in.weight, in.bias, kEps);
    const auto got = layerNormForwardCuda(in.x, in.weight, in.bias, kEps, dt);
    QCOMPARE(got.y.scalar_type(), dt);
    const auto refY = std::get<0>(ref).to(dt);
    checkClose(got.y, refY, 1e-4, bf16 ? 1.0 / 128 : 1.0 / 1024, "y");
    checkClose(got.mean, std::get<1>(ref).reshape({-1}), 1e-6, 1e-5, "mean");
    checkClose(got.rstd, std::get<2>(ref).reshape({-1}), 0.0, 1e-5, "rstd");

    // Backward against autograd through the fp32 reference, fed the same 16-bit dy.
    const auto dy = torch::randn({rows, cols}, in.x.options()).to(dt);
    auto x = in.x.clone().requires_grad_(true), w = in.weight.clone().requires_grad_(true),
         b = in.bias.clone().requires_grad_(true);
    torch::layer_norm(x, {cols}, w, b, kEps).backward(dy.to(torch::kFloat32));
    const auto g = layerNormBackwardCuda(dy, in.x, got.mean, got.rstd, in.weight);
    checkClose(g.dx, x.grad(), 1e-5, 1e-4, "dx");
    checkNormClose(g.dweight, w.grad(), 1e-4, "dweight");
    checkNormClose(g.dbias, b.grad(), 1e-4, "dbias");

    // Deterministic: a second backward gives the same bits.
    const auto again = layerNormBackwardCuda(dy, in.x, got.mean, got.rstd, in.weight);
    QVERIFY(torch::equal(again.dx, g.dx));
    QVERIFY(torch::equal(again.dweight, g.dweight));
    QVERIFY(torch::equal(again.dbias, g.dbias));
  }

  void autogradFunctionGivesTheGradients() {
    torch::manual_seed(3);
    const Inputs in = makeInputs(24, 768);
    auto x = in.x.view({2, 12, 768}).clone().requires_grad_(true);
    auto w = in.weight.clone().requires_grad_(true), b = in.bias.clone().requires_grad_(true);
    const auto y = fusedLayerNorm(x, w, b, kEps, torch::kBFloat16);
    QCOMPARE(y.scalar_type(), torch::kBFloat16);
    QCOMPARE(y.sizes(), x.sizes());
    const auto dy = torch::randn_like(y);
    y.backward(dy);
    auto xr = in.x.view({2, 12, 768}).clone().requires_grad_(true);
    auto wr = in.weight.clone().requires_grad_(true), br = in.bias.clone().requires_grad_(true);
    torch::layer_norm(xr, {768}, wr, br, kEps).backward(dy.to(torch::kFloat32));
    QCOMPARE(x.grad().scalar_type(), torch::kFloat32);
    checkClose(x.grad(), xr.grad(), 1e-5, 1e-4, "dx");
    checkNormClose(w.grad(), wr.grad(), 1e-4, "dweight");
    checkNormClose(b.grad(), br.grad(), 1e-4, "dbias");
  }

  void gpt2MatchesUnfusedUnderAutocast() {
    if (!compat::kHasAutocast) QSKIP("autocast needs LibTorch >= 2.4");
    torch::manual_seed(11);
    Gpt2 m(test::tinyConfig({.vocab = 1000, .positions = 64, .embd = 128, .layers = 2, .heads = 4}));
    m->to(kCuda);
    m->train();
    const auto ids = torch::randint(0, 1000, {4, 32}, torch::TensorOptions().dtype(torch::kLong).device(kCuda));
    {
      // The fused path really runs: ln_f's output comes back in bf16, not fp32.
      torch::NoGradGuard noGrad;
      compat::AutocastGuard amp(torch::kCUDA, torch::kBFloat16);
      QCOMPARE(m->hidden(ids).scalar_type(), torch::kBFloat16);
      m->setFusedLayerNorm(false);
      QCOMPARE(m->hidden(ids).scalar_type(), torch::kFloat32);
      m->setFusedLayerNorm(true);
    }
    const auto [fusedLoss, fusedGrads] = lossAndGrads(m, ids);
    m->setFusedLayerNorm(false);
    const auto [plainLoss, plainGrads] = lossAndGrads(m, ids);
    QVERIFY2(std::abs(fusedLoss - plainLoss) <= 2e-3 * std::abs(plainLoss),
             (std::to_string(fusedLoss) + " vs " + std::to_string(plainLoss)).c_str());
    const auto names = m->named_parameters();
    for (size_t i = 0; i < plainGrads.size(); ++i) {
      QVERIFY(plainGrads[i].norm().item<double>() > 0.0);
      checkNormClose(fusedGrads[i], plainGrads[i], 2e-2, names[i].key());
    }
  }

  void shapesTheKernelCannotTakeFallBack() {
    torch::manual_seed(5);
    for (int64_t cols : {int64_t{100}, int64_t{8192}}) {
      torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({cols}).eps(kEps));
      ln->to(kCuda);
      const auto x = torch::randn({6, cols}, torch::TensorOptions().device(kCuda));
      QVERIFY(!layerNormKernelFits(x, ln->weight));
      torch::Tensor got;
      if (compat::kHasAutocast) {
        compat::AutocastGuard amp(torch::kCUDA, torch::kBFloat16);
        got = layerNormForTraining(ln, x);
      } else {
        got = layerNormForTraining(ln, x);
      }
      QCOMPARE(got.scalar_type(), torch::kFloat32);
      QVERIFY(torch::equal(got, ln->forward(x)));
      const std::string e = inputErrorOf([&] { fusedLayerNorm(x, ln->weight, ln->bias, kEps, torch::kBFloat16); });
      QVERIFY2(e.find(": x") != std::string::npos, e.c_str());
    }
    // A shape that fits, but no autocast: LibTorch's layer_norm, bit for bit.
    torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({768}).eps(kEps));
    ln->to(kCuda);
    const auto x = torch::randn({6, 768}, torch::TensorOptions().device(kCuda));
    QVERIFY(torch::equal(layerNormForTraining(ln, x), ln->forward(x)));
  }

  void badInputsNameTheArgument() {
    torch::manual_seed(7);
    const Inputs in = makeInputs(8, 768);
    const auto bf16 = torch::kBFloat16;
    auto has = [](const std::string& e, const std::string& arg) { return e.find(arg) != std::string::npos; };
    std::string e = inputErrorOf([&] { layerNormForwardCuda(in.x.to(torch::kHalf), in.weight, in.bias, kEps, bf16); });
    QVERIFY2(has(e, ": x"), e.c_str());
    e = inputErrorOf([&] { layerNormForwardCuda(in.x, in.weight.narrow(0, 0, 640), in.bias, kEps, bf16); });
    QVERIFY2(has(e, ": weight"), e.c_str());
    e = inputErrorOf([&] { layerNormForwardCuda(in.x, in.weight, in.bias.to(torch::kHalf), kEps, bf16); });
    QVERIFY2(has(e, ": bias"), e.c_str());
    e = inputErrorOf([&] { layerNormForwardCuda(in.x, in.weight, in.bias, kEps, torch::kFloat32); });
    QVERIFY2(has(e, ": output dtype"), e.c_str());
    const auto f = layerNormForwardCuda(in.x, in.weight, in.bias, kEps, bf16);
    e = inputErrorOf([&] { layerNormBackwardCuda(f.y.narrow(0, 0, 4), in.x, f.mean, f.rstd, in.weight); });
    QVERIFY2(has(e, ": dy"), e.c_str());
    e = inputErrorOf([&] { layerNormBackwardCuda(f.y, in.x, f.mean.narrow(0, 0, 4), f.rstd, in.weight); });
    QVERIFY2(has(e, ": mean"), e.c_str());
    e = inputErrorOf([&] { layerNormBackwardCuda(f.y, in.x, f.mean, f.rstd.to(torch::kDouble), in.weight); });
    QVERIFY2(has(e, ": rstd"), e.c_str());
  }
};

QTEST_APPLESS_MAIN(TestLayerNormCuda)
#include "test_layernorm_cuda.moc"
