// Second derivatives: the gradient graph is differentiated again and gradient-checked, and one
// value is compared with its hand derivation.
#include <doctest/doctest.h>

#include <cmath>

#include <xgrad/xgrad.hpp>

using namespace xg;

namespace {
/// Gradient-checks x -> d f(x) / dx, i.e. the second derivative of f.
void check_second_order(const char* what, Var (*f)(Var, Var)) {
  CAPTURE(what);
  Graph g(11, DType::f64);
  const Var x = g.param("x", {2, 3}, Init::normal(0.0, 1.0));
  const Var w = g.param("w", {3, 3}, Init::normal(0.0, 1.0));
  const std::vector<Var> first = grad(g, sum(f(x, w)), {x, w});
  const GradcheckReport report = gradcheck(g, first[0] + matmul(x, first[1]), {x, w});
  INFO(report.summary());
  CHECK(report.passed());
}
}  // namespace

TEST_CASE("second derivatives of tanh, exp, mul, matmul and softmax pass gradcheck") {
  check_second_order("tanh", [](Var x, Var) { return tanh(x) * tanh(x); });
  check_second_order("exp", [](Var x, Var) { return exp(x * 0.5) * x; });
  check_second_order("mul", [](Var x, Var) { return x * x * x; });
  check_second_order("matmul", [](Var x, Var w) { return square(matmul(x, w)); });
  check_second_order("softmax", [](Var x, Var w) { return softmax(matmul(x, w)) * matmul(x, w); });
  check_second_order("log_softmax", [](Var x, Var) { return square(log_softmax(x)); });
  check_second_order("gelu", [](Var x, Var) { return gelu(x); });
  check_second_order("cross_entropy", [](Var x, Var w) {
    Graph& g = x.graph();
    const Var labels = g.constant(Tensor(xt::xarray<std::int32_t>{2, 0}));
    CrossEntropyOptions o;
    o.class_axis = -1;
    o.label_smoothing = 0.1;
    return cross_entropy(matmul(x, w), labels, o);
  });
}

TEST_CASE("second derivative of tanh equals -2 tanh (1 - tanh^2)") {
  Graph g(0, DType::f64);
  const Var x = g.input("x", {3});
  const Var dx = grad(g, sum(tanh(x)), {x})[0];
  const Var ddx = grad(g, sum(dx), {x})[0];
  Program p = compile(g, {ddx});
  const xt::xarray<double> xv = {0.5, -1.0, 2.0};
  p.run({{x, xv}});
  const xt::xarray<double> got = p.get<double>(ddx);
  for (std::size_t i = 0; i < 3; ++i) {
    const double t = std::tanh(xv(i));
    CHECK(got(i) == doctest::Approx(-2.0 * t * (1.0 - t * t)).epsilon(1e-12));
  }
}

TEST_CASE("gradient of a value used twice is accumulated") {
  // y = x * x + 3 x  =>  dy/dx = 2x + 3
  Graph g(0, DType::f64);
  const Var x = g.input("x", {2});
  const Var dx = grad(g, sum(x * x + x * 3.0), {x})[0];
  Program p = compile(g, {dx});
  const xt::xarray<double> xv = {1.5, -2.0};
  p.run({{x, xv}});
  CHECK(p.get<double>(dx)(0) == doctest::Approx(6.0));
  CHECK(p.get<double>(dx)(1) == doctest::Approx(-1.0));
}

TEST_CASE("gradient of an unconnected input is zero, and stop_gradient blocks flow") {
  Graph g(0, DType::f64);
  const Var x = g.input("x", {2}), z = g.input("z", {2});
  const std::vector<Var> grads = grad(g, sum(exp(stop_gradient(x)) + z * 2.0), {x, z});
  Program p = compile(g, grads);
  const xt::xarray<double> v = {0.3, 0.4};
  p.run({{x, v}, {z, v}});
  CHECK(p.get<double>(grads[0])(0) == 0.0);
  CHECK(p.get<double>(grads[1])(1) == 2.0);
}

TEST_CASE("gradient shapes stay right whatever the node count (builders may hold a shape while adding nodes)") {
  // layer_norm's rule once read gamma's shape through a reference that appending a node invalidated,
  // at the node counts where the node storage grew.
  for (int padding = 0; padding < 300; ++padding) {
    Graph g(1, DType::f64);
    for (int k = 0; k < padding; ++k) g.scalar(k);
    const Var x = g.param("x", {3, 4}, Init::normal(0.0, 1.0));
    const Var gamma = g.param("gamma", {4}, Init::ones());
    const std::vector<Var> d = grad(g, sum(layer_norm(x, 1, 1e-5, gamma) * x), {gamma, x});
    CAPTURE(padding);
    CHECK(d[0].shape() == Shape{4});
    CHECK(d[1].shape() == Shape{3, 4});
  }
}
