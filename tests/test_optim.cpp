// Optimizer updates against torch.optim (tests/golden/core.txt), schedules against hand-derived
// values, and the Trainer's reproducibility.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>

#include "golden.hpp"

using namespace xg;

namespace {

const testing::Golden& core() {
  static const testing::Golden golden("core.txt");
  return golden;
}

/// Three steps of `Opt` on the golden parameter with the golden gradients, in dtype T.
template <class T, class Make>
xt::xarray<double> three_steps(Make make, double lr) {
  Graph g(0, dtype_of<T>());
  const Var p = g.param("p", {6}, Init::zeros());
  g.value(p) = core()["optim.param"].cast(dtype_of<T>());
  auto opt = make(g, std::vector<Var>{p});
  for (int k = 0; k < 3; ++k) {
    const Tensor grad = core()[fmt::format("optim.grad{}", k)].cast(dtype_of<T>());
    const std::vector<TensorRef> grads{TensorRef(grad)};
    opt->step(grads, lr);
  }
  return g.value(p).cast(DType::f64).as<double>();
}

double max_error(const xt::xarray<double>& a, const std::string& golden) {
  return xt::amax(xt::abs(a - core().f64(golden)))();
}

}  // namespace

TEST_CASE_TEMPLATE("SGD, Adam and AdamW match torch.optim over three steps", T, double, float) {
  const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  auto sgd = [](optim::SGDOptions o) {
    return [o](Graph& g, std::vector<Var> p) { return std::make_unique<optim::SGD>(g, std::move(p), o); };
  };
  auto adam = [](optim::AdamOptions o) {
    return [o](Graph& g, std::vector<Var> p) { return std::make_unique<optim::Adam>(g, std::move(p), o); };
  };
  CHECK(max_error(three_steps<T>(sgd({0.9, 0.1, 0.01, false}), 0.1), "optim.sgd_momentum") < tol);
  CHECK(max_error(three_steps<T>(sgd({0.9, 0.0, 0.0, true}), 0.1), "optim.sgd_nesterov") < tol);
  CHECK(max_error(three_steps<T>(adam({0.8, 0.99, 1e-6, 0.1, false}), 0.01), "optim.adam") < tol);
  optim::AdamOptions w = optim::adamw(0.1);
  w.beta1 = 0.8;
  w.beta2 = 0.99;
  w.eps = 1e-6;
  CHECK(max_error(three_steps<T>(adam(w), 0.01), "optim.adamw") < tol);
}

TEST_CASE("global-norm clipping matches torch.nn.utils.clip_grad_norm_") {
  Graph g(0, DType::f64);
  const Var p = g.param("p", {6}, Init::zeros());
  g.value(p) = core()["optim.param"];
  optim::SGD sgd(g, {p});
  sgd.clip_norm = 0.5;
  const Tensor grad = core()["optim.grad0"];
  const std::vector<TensorRef> grads{TensorRef(grad)};
  const optim::StepInfo info = sgd.step(grads, 1.0);
  CHECK(info.grad_norm == doctest::Approx(core().f64("optim.clip.norm")()).epsilon(1e-12));
  CHECK(info.clip_scale < 1.0);
  CHECK(max_error(g.value(p).as<double>(), "optim.clip.sgd") < 1e-12);
}

TEST_CASE("an optimizer refuses gradients of the wrong shape and non-parameters") {
  Graph g(0, DType::f64);
  const Var p = g.param("p", {3}, Init::zeros());
  const Var x = g.input("x", {3});
  CHECK_THROWS_AS(optim::SGD(g, {x}), ValueError);
  optim::Adam adam(g, {p});
  const Tensor wrong(xt::xarray<double>{1.0, 2.0});
  const std::vector<TensorRef> grads{TensorRef(wrong)};
  CHECK_THROWS_WITH_AS(adam.step(grads, 0.1), doctest::Contains("'p'"), ShapeError);
  CHECK_THROWS_AS(optim::Adam(g, {p}, {1.5, 0.999, 1e-8, 0.0, false}), ValueError);
}

TEST_CASE("schedules: linear warmup, then cosine or inverse square root") {
  const optim::WarmupCosine cosine{1.0, 10, 110, 0.1};
  CHECK(cosine(0) == doctest::Approx(0.1));
  CHECK(cosine(9) == doctest::Approx(1.0));
  CHECK(cosine(10) == doctest::Approx(1.0));
  CHECK(cosine(60) == doctest::Approx(0.1 + 0.45 * (1.0 + std::cos(std::numbers::pi * 0.5))));
  CHECK(cosine(110) == doctest::Approx(0.1));
  CHECK(cosine(500) == doctest::Approx(0.1));
  const optim::WarmupInverseSqrt inverse{2.0, 4};
  CHECK(inverse(1) == doctest::Approx(1.0));
  CHECK(inverse(3) == doctest::Approx(2.0));
  CHECK(inverse(15) == doctest::Approx(1.0));
}

TEST_CASE("pad_sequences pads after each sequence and refuses one that does not fit") {
  const std::vector<std::vector<std::int32_t>> seqs{{5, 6, 7}, {8}};
  const PaddedBatch b = pad_sequences(seqs, 4, 0);
  CHECK(b.tokens == xt::xarray<std::int32_t>{{5, 6, 7, 0}, {8, 0, 0, 0}});
  CHECK(b.lengths == xt::xarray<std::int32_t>{3, 1});
  CHECK_THROWS_WITH_AS(pad_sequences(seqs, 2, 0), doctest::Contains("sequence 0 has 3 tokens"), ValueError);
}
