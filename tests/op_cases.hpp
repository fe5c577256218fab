#pragma once
// The gradient-check table: one or more cases per differentiable op, each a tiny f64 graph whose
// differentiable operands are parameters (so that no feeds are needed). Used by the test suite and
// by examples/gradcheck. Adding an op adds its line(s) here.
#include <functional>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

namespace xg::testing {

struct CheckTarget {
  Var y;
  std::vector<Var> wrt;
};

struct OpCase {
  std::string op;
  std::string variant;
  std::function<CheckTarget(Graph&)> build;
  GradcheckOptions options = {};
};

const std::vector<OpCase>& op_cases();

/// Builds the case in a fresh f64 graph and gradient-checks it.
GradcheckReport run_case(const OpCase& c);

}  // namespace xg::testing
