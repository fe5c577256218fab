// Every differentiable op, layer and model, gradient-checked in f64 against central differences.
#include <doctest/doctest.h>

#include "op_cases.hpp"

using namespace xg;

namespace {
void check_table(const std::vector<testing::OpCase>& cases) {
  for (const auto& c : cases) {
    CAPTURE(c.op);
    CAPTURE(c.variant);
    const GradcheckReport report = testing::run_case(c);
    INFO(report.summary());
    CHECK(report.passed());
    CHECK(!report.entries.empty());
  }
}
}  // namespace

TEST_CASE("every op in the gradient-check table passes") { check_table(testing::op_cases()); }

TEST_CASE("gradcheck reports a wrong gradient") {
  // stop_gradient hides one factor from autodiff: d(x * sg(x))/dx is x analytically but 2x numerically.
  Graph g(3, DType::f64);
  const Var x = g.param("x", {4}, Init::uniform(1.0, 2.0));
  const GradcheckReport report = gradcheck(g, x * stop_gradient(x), {x});
  REQUIRE(report.entries.size() == 1);
  CHECK_FALSE(report.passed());
  CHECK(report.entries[0].max_abs_error > 0.5);
}

TEST_CASE("every layer and model in the gradient-check table passes, with padding present") {
  check_table(testing::layer_cases());
}
