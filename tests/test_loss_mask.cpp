// The loss mask on the seed's numbers: the per-token loss and mask as docs/design.md gives them,
// and the gradients of sum(loss * mask) / sum(mask) as PyTorch computes them.
#include <doctest/doctest.h>

#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>

#include "golden.hpp"

using namespace xg;

namespace {

struct LossMask {
  Graph g{0, DType::f64};
  Var logits = g.param("logits", {2, 5, 3}, Init::zeros());
  Var labels = g.input("labels", {2, 3}, DType::i32);
  Var lengths = g.input("lengths", {2}, DType::i32);
  Var mask_value = sequence_mask(lengths, 3, DType::f64);
  // A zero parameter added to the mask so that the gradient to the mask itself can be asked for.
  Var mask_shift = g.param("mask_shift", {2, 3}, Init::zeros());
  Var mask = mask_value + mask_shift;
  Var loss;
  Var objective;

  LossMask() {
    CrossEntropyOptions o;
    o.reduction = Reduction::none;
    loss = cross_entropy(logits, labels, o);
    objective = sum(loss * mask) / sum(mask);
  }
};

}  // namespace

TEST_CASE("the seed's loss mask: per-token loss and mask as in docs/design.md, gradients as in PyTorch") {
  const testing::Golden golden("core.txt");
  LossMask m;
  m.g.value(m.logits) = golden["loss_mask.logits"];
  const std::vector<Var> grads = grad(m.g, m.objective, {m.logits, m.mask_shift});
  Program p = compile(m.g, {m.loss, m.mask_value, m.objective, grads[0], grads[1]});
  const xt::xarray<std::int32_t> labels = golden.i32("loss_mask.labels");
  const xt::xarray<std::int32_t> lengths = golden.i32("loss_mask.lengths");
  p.run({{m.labels, labels}, {m.lengths, lengths}});

  // The numbers of docs/design.md, typed in from there.
  const xt::xarray<double> design_loss{{2.2954, 2.7556, 1.5419}, {1.5731, 2.1495, 2.7554}};
  CHECK(xt::amax(xt::abs(p.get<double>(m.loss) - design_loss))() < 2e-4);
  CHECK(p.get<double>(m.mask_value) == xt::xarray<double>{{1, 1, 0}, {1, 1, 1}});

  // PyTorch's forward and backward of the same computation.
  CHECK(xt::amax(xt::abs(p.get<double>(m.loss) - golden.f64("loss_mask.loss")))() < 1e-12);
  CHECK(p.get<double>(m.objective)() == doctest::Approx(golden.f64("loss_mask.objective")()).epsilon(1e-12));
  CHECK(xt::amax(xt::abs(p.get<double>(grads[0]) - golden.f64("loss_mask.grad_logits")))() < 1e-12);
  // d objective / d mask = (loss - objective) / sum(mask): the masked-out position gets a gradient too.
  CHECK(xt::amax(xt::abs(p.get<double>(grads[1]) - golden.f64("loss_mask.grad_mask")))() < 1e-12);

  // Padded position (0, 2) gets no gradient in its logits.
  const xt::xarray<double> g_logits = p.get<double>(grads[0]);
  for (std::size_t v = 0; v < 5; ++v) CHECK(g_logits(0, v, 2) == 0.0);

  const std::vector<Feed> feeds{{m.labels, labels}, {m.lengths, lengths}};
  const GradcheckReport report = gradcheck(m.g, m.objective, {m.logits, m.mask_shift}, feeds);
  INFO(report.summary());
  CHECK(report.passed());
}

TEST_CASE("the loss mask in f32 gives the numbers of docs/design.md too") {
  const testing::Golden golden("core.txt");
  Graph g(0, DType::f32);
  const Var logits = g.input("logits", {2, 5, 3});
  const Var labels = g.input("labels", {2, 3}, DType::i32);
  const Var lengths = g.input("lengths", {2}, DType::i32);
  CrossEntropyOptions o;
  o.reduction = Reduction::none;
  const Var loss = cross_entropy(logits, labels, o);
  const Var mask = sequence_mask(lengths, 3, DType::f32);
  const Var objective = sum(loss * mask) / sum(mask);
  Program p = compile(g, {loss, objective});
  const Tensor logits_f32 = golden["loss_mask.logits"].cast(DType::f32);
  p.run({{logits, logits_f32}, {labels, golden["loss_mask.labels"]}, {lengths, golden["loss_mask.lengths"]}});
  const xt::xarray<float> design_loss{{2.2954f, 2.7556f, 1.5419f}, {1.5731f, 2.1495f, 2.7554f}};
  CHECK(xt::amax(xt::abs(p.get<float>(loss) - design_loss))() < 2e-4f);
  // (2.2954 + 2.7556 + 1.5731 + 2.1495 + 2.7554) / 5
  CHECK(p.get<float>(objective)() == doctest::Approx(2.3058).epsilon(1e-4));
}
