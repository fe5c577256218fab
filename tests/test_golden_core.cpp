// Forward values of the core ops against values PyTorch computed (tests/golden/core.txt).
#include <doctest/doctest.h>

#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>

#include "golden.hpp"

using namespace xg;

namespace {

const testing::Golden& core() {
  static const testing::Golden golden("core.txt");
  return golden;
}

/// Builds f(inputs...) in an f64 graph whose inputs are the named golden records, runs it once.
template <class Build>
xt::xarray<double> evaluate(const std::vector<std::string>& names, Build build) {
  Graph g(0, DType::f64);
  std::vector<Var> inputs;
  std::vector<Feed> feeds;
  for (const auto& name : names) {
    const Tensor& value = core()[name];
    inputs.push_back(g.input(name, value.shape(), value.dtype()));
    feeds.push_back({inputs.back(), TensorRef(value)});
  }
  const Var y = build(inputs);
  Program p = compile(g, {y});
  p.run(feeds);
  return p.get<double>(y);
}

void check_close(const xt::xarray<double>& got, const std::string& golden_name, double tol = 1e-12) {
  const xt::xarray<double> want = core().f64(golden_name);
  REQUIRE(got.shape() == want.shape());
  const double err = xt::amax(xt::abs(got - want))();
  INFO(golden_name, ": max abs error ", err);
  CHECK(err <= tol);
}

}  // namespace

TEST_CASE("softmax and log_softmax match PyTorch on an inner and the last axis") {
  for (int axis : {1, -1}) {
    const std::string suffix = fmt::format(".axis{}", axis);
    check_close(evaluate({"softmax.x"}, [&](auto& in) { return softmax(in[0], axis); }), "softmax" + suffix);
    check_close(evaluate({"softmax.x"}, [&](auto& in) { return log_softmax(in[0], axis); }), "log_softmax" + suffix);
  }
}

TEST_CASE("layer_norm matches PyTorch with gamma and beta, and over two axes") {
  check_close(evaluate({"layer_norm.x", "layer_norm.gamma", "layer_norm.beta"},
                       [](auto& in) { return layer_norm(in[0], 1, 1e-5, in[1], in[2]); }),
              "layer_norm.affine");
  check_close(evaluate({"layer_norm.x"}, [](auto& in) { return layer_norm(in[0], 2, 1e-3); }), "layer_norm.last2");
}

TEST_CASE("gelu matches PyTorch in its erf and tanh forms") {
  check_close(evaluate({"gelu.x"}, [](auto& in) { return gelu(in[0]); }), "gelu.erf");
  check_close(evaluate({"gelu.x"}, [](auto& in) { return gelu(in[0], GeluApprox::tanh); }), "gelu.tanh");
}

TEST_CASE("cross_entropy matches PyTorch: reductions, ignore_index, label smoothing, class axis") {
  auto ce = [](Reduction reduction, double smoothing = 0.0, std::int64_t ignore = -100, int axis = 1) {
    return [=](auto& in) {
      CrossEntropyOptions o;
      o.reduction = reduction;
      o.label_smoothing = smoothing;
      o.ignore_index = ignore;
      o.class_axis = axis;
      return cross_entropy(in[0], in[1], o);
    };
  };
  const std::vector<std::string> in{"ce.logits", "ce.labels"};
  check_close(evaluate(in, ce(Reduction::none)), "ce.none");
  check_close(evaluate(in, ce(Reduction::sum)), "ce.sum");
  check_close(evaluate(in, ce(Reduction::mean)), "ce.mean");
  check_close(evaluate(in, ce(Reduction::none, 0.1)), "ce.smooth.none");
  check_close(evaluate(in, ce(Reduction::mean, 0.1)), "ce.smooth.mean");
  check_close(evaluate({"ce.logits", "ce.ignore3.labels"}, ce(Reduction::mean, 0.0, 3)), "ce.ignore3.mean");
  check_close(evaluate({"ce.last.logits", "ce.labels"}, ce(Reduction::none, 0.0, -100, -1)), "ce.last.none");
}
