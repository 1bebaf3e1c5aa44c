// Tensor comparison helpers; see torch_support.h.
#include "tests/support/torch_support.h"

#include <sstream>

namespace wb::test {

CloseReport allClose(const torch::Tensor& aIn, const torch::Tensor& bIn, double atol, double rtol) {
  CloseReport r;
  if (aIn.sizes() != bIn.sizes()) {
    std::ostringstream os;
    os << "shape " << aIn.sizes() << " != " << bIn.sizes();
    r.ok = false;
    r.message = os.str();
    return r;
  }
  const auto a = aIn.detach().to(torch::kCPU, torch::kFloat64);
  const auto b = bIn.detach().to(torch::kCPU, torch::kFloat64);
  const auto diff = (a - b).abs();
  r.maxAbs = diff.numel() ? diff.max().item<double>() : 0.0;
  const auto nz = b.abs() > 0;
  r.maxRel = nz.any().item<bool>() ? (diff.masked_select(nz) / b.abs().masked_select(nz)).max().item<double>() : 0.0;
  const auto bad = diff > (atol + rtol * b.abs());
  r.ok = !bad.any().item<bool>();
  std::ostringstream os;
  os << "max |a-b| = " << r.maxAbs << ", max rel = " << r.maxRel << " (atol " << atol << ", rtol "
     << rtol << ")";
  r.message = os.str();
  return r;
}

Gpt2Config tinyConfig(const TinyGpt2& t) {
  Gpt2Config c;
  c.vocabSize = t.vocab;
  c.nPositions = t.positions;
  c.nEmbd = t.embd;
  c.nLayer = t.layers;
  c.nHead = t.heads;
  c.residPdrop = c.embdPdrop = c.attnPdrop = t.dropout;
  return c;
}

}  // namespace wb::test
