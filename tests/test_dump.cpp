// The text IR and the Graphviz export: one line per node, gradient nodes told apart, only what the
// outputs need.
#include <doctest/doctest.h>

#include <algorithm>

#include <xgrad/xgrad.hpp>

using namespace xg;

TEST_CASE("text IR: one line per node, with op, inputs, dtype, shape, attributes, name and gradient marks") {
  Graph g;
  const Var x = g.input("x", {4, 3});
  const Var w = g.param("w", {3, 2}, Init::zeros());
  const Var y = sum(tanh(matmul(x, w)));
  const int forward_nodes = g.size();
  const Var dw = grad(g, y, {w})[0];
  const std::string text = to_text(g);
  CHECK(std::count(text.begin(), text.end(), '\n') == g.size());
  CHECK(text.find("%0 = input() f32 (4, 3) 'x'\n") != std::string::npos);
  CHECK(text.find("%1 = param() f32 (3, 2) {kind=constant, a=0, b=0} 'w'\n") != std::string::npos);
  CHECK(text.find("%2 = matmul(%0, %1) f32 (4, 2) {transpose_a=false, transpose_b=false}\n") != std::string::npos);
  CHECK(text.find(fmt::format("%{} = ", dw.id())) != std::string::npos);
  for (int id = 0; id < g.size(); ++id) CHECK(g.is_gradient(id) == (id >= forward_nodes));
  std::size_t marks = 0;
  for (auto at = text.find(" [grad]\n"); at != std::string::npos; at = text.find(" [grad]\n", at + 1)) ++marks;
  CHECK(marks == static_cast<std::size_t>(g.size() - forward_nodes));
}

TEST_CASE("DOT: forward and gradient nodes drawn apart, restricted to what the outputs need") {
  Graph g;
  const Var x = g.input("x", {4, 3});
  const Var w = g.param("w", {3, 2}, Init::zeros());
  const Var unused = exp(x);
  const Var y = sum(tanh(matmul(x, w)));
  const Var dw = grad(g, y, {w})[0];
  const std::string all = to_dot(g);
  const std::string needed = to_dot(g, {y, dw});
  CHECK(all.starts_with("digraph xgrad {"));
  CHECK(all.find(fmt::format("n{} [", unused.id())) != std::string::npos);
  CHECK(needed.find(fmt::format("n{} [", unused.id())) == std::string::npos);
  CHECK(needed.find(fmt::format("n{} [label=\"%{} param\\nw", w.id(), w.id())) != std::string::npos);
  CHECK(needed.find("#f9cb9c") != std::string::npos);  // gradient ops' colour
  CHECK(needed.find(fmt::format("n{} -> n{}", x.id(), y.id() - 2)) != std::string::npos);
  CHECK(needed.find("penwidth=2.5") != std::string::npos);
}
