// grad() checks what every gradient rule returns: one gradient per input at most, each of its input's
// exact shape and dtype. The rules below are deliberately wrong, test-local ops; without the check
// the first one's mistake (a forgotten sum_to) was broadcast into a wrong-shaped gradient silently.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

#include "error_message.hpp"
#include "xgrad/op_def.hpp"

using namespace xg;
using testing::has;

namespace {

using Grads = std::vector<Var>;

// Broadcasting addition whose rule forgets to sum the gradient back to each operand's shape.
Grads forgets_sum_to(const VjpArgs& a) { return {a.grad, a.grad}; }
// A rule that hands back the gradient in another dtype.
Grads changes_dtype(const VjpArgs& a) { return {cast(a.grad, DType::f64), Var{}}; }
// A rule that returns more gradients than the op has inputs.
Grads too_many(const VjpArgs& a) { return {a.grad, a.grad, a.grad}; }

const OpDef op_forgets_sum_to{.name = "forgets_sum_to", .vjp = forgets_sum_to};
const OpDef op_changes_dtype{.name = "changes_dtype", .vjp = changes_dtype};
const OpDef op_too_many{.name = "too_many", .vjp = too_many};

/// The op applied to (2, 3) and (3,) f32 values, as a broadcasting binary op would be.
Var apply(const OpDef& op, Var a, Var b) { return a.graph().add_node(op, {a, b}, {}, a.dtype(), a.shape()); }

/// What grad says of the op's rule on (2, 3) and (3,) parameters.
std::string gradient_error(const OpDef& op) {
  Graph g;
  const Var a = g.param("a", {2, 3}, Init::ones()), b = g.param("b", {3}, Init::ones());
  const Var y = sum(apply(op, a, b));
  return testing::message_of<GradientError>([&] { grad(g, y, {a, b}); });
}

}  // namespace

TEST_CASE("a gradient rule that forgets sum_to is a GradientError naming the op, the input and both shapes") {
  const std::string m = gradient_error(op_forgets_sum_to);
  INFO(m);
  CHECK(has(m, "gradient rule of forgets_sum_to at node 2 (forgets_sum_to)"));
  CHECK(has(m, "input 1 (node 1 (param 'b'))"));
  CHECK(has(m, "f32 (2, 3)"));
  CHECK(has(m, "the input is f32 (3,)"));
}

TEST_CASE("a gradient rule that changes the dtype is a GradientError naming both dtypes") {
  const std::string m = gradient_error(op_changes_dtype);
  INFO(m);
  CHECK(has(m, "changes_dtype"));
  CHECK(has(m, "input 0 (node 0 (param 'a'))"));
  CHECK(has(m, "a gradient of f64 (2, 3)"));
  CHECK(has(m, "the input is f32 (2, 3)"));
}

TEST_CASE("a gradient rule that returns more gradients than inputs is a GradientError") {
  const std::string m = gradient_error(op_too_many);
  INFO(m);
  CHECK(has(m, "too_many"));
  CHECK(has(m, "3 gradients for its 2 inputs"));
}

TEST_CASE("a rule's wrong gradient is refused even for an input that needs no gradient") {
  Graph g;
  const Var a = g.param("a", {2, 3}, Init::ones());
  const Var b = g.input("b", {3});
  CHECK_THROWS_AS(grad(g, sum(apply(op_forgets_sum_to, a, b)), {a}), GradientError);
}
