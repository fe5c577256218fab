// A Graph stays where it was made: every Var holds its address, so a moved graph would leave its Vars
// dangling. Moving (and assigning over a graph, which would re-point its Vars at other nodes) does
// not compile; a deep copy is still possible and leaves the original and its Vars alone.
#include <doctest/doctest.h>

#include <type_traits>

#include <xgrad/xgrad.hpp>

using namespace xg;

static_assert(!std::is_move_constructible_v<Graph>, "a moved Graph would leave its Vars dangling");
static_assert(!std::is_move_assignable_v<Graph>, "a moved Graph would leave its Vars dangling");
static_assert(!std::is_copy_assignable_v<Graph>, "assigning over a Graph would re-point its Vars");
static_assert(std::is_copy_constructible_v<Graph>, "gradcheck perturbs a deep copy");

TEST_CASE("a copied graph has its own nodes and parameter values; the original's Vars still refer to the original") {
  Graph g;
  const Var w = g.param("w", {2}, Init::ones());
  const Var y = sum(w * 3.0);
  Graph copy(g);
  CHECK(copy.size() == g.size());
  g.value(w).as<float>()(0) = 5.0f;
  CHECK(copy.value(copy.var(w.id())).as<float>()(0) == 1.0f);
  CHECK(&y.graph() == &g);
  Program p = compile(g, {y});
  p.run({});
  CHECK(p.get<float>(y)() == 18.0f);
}
