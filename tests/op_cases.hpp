#pragma once
// The gradient-check tables: one or more cases per differentiable op, each a tiny f64 graph whose
// differentiable operands are parameters, and one or more per layer and model. Used by the test
// suite and by examples/gradcheck. Adding an op or a layer adds its line(s) here.
#include <functional>
#include <utility>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

namespace xg::testing {

struct CheckTarget {
  Var y;
  std::vector<Var> wrt;
  std::vector<std::pair<Var, Tensor>> feeds = {};  // values of the graph's inputs, if it has any
};

struct OpCase {
  std::string op;
  std::string variant;
  std::function<CheckTarget(Graph&)> build;
  GradcheckOptions options = {};
};

const std::vector<OpCase>& op_cases();
/// The layers of xgrad/nn and the three models of graph/, at tiny sizes with padding present.
const std::vector<OpCase>& layer_cases();

/// The leaves the cases are built from: a parameter drawn from N(0, 1), an i32 constant.
inline Var normal(Graph& g, const std::string& name, Shape shape) {
  return g.param(name, std::move(shape), Init::normal(0.0, 1.0));
}
inline Var ints(Graph& g, xt::xarray<std::int32_t> values) { return g.constant(Tensor(std::move(values))); }

/// Builds the case in a fresh f64 graph and gradient-checks it.
GradcheckReport run_case(const OpCase& c);

}  // namespace xg::testing
