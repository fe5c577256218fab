// Bad input: every case asserts the error type and that the message names the problem.
#include <doctest/doctest.h>

#include <string>

#include <xgrad/xgrad.hpp>

#include "error_message.hpp"

using namespace xg;
using testing::has;
using testing::message_of;

TEST_CASE("binary op with shapes that do not broadcast names op, nodes and shapes") {
  Graph g;
  const Var a = g.input("a", {2, 3}), b = g.input("b", {4});
  const std::string m = message_of<ShapeError>([&] { add(a, b); });
  CHECK(has(m, "add"));
  CHECK(has(m, "(2, 3)"));
  CHECK(has(m, "(4,)"));
  CHECK(has(m, "'a'"));
  CHECK(has(m, "'b'"));
}

TEST_CASE("matmul with mismatched inner dimensions") {
  Graph g;
  const Var a = g.input("a", {2, 3}), b = g.input("b", {4, 5});
  const std::string m = message_of<ShapeError>([&] { matmul(a, b); });
  CHECK(has(m, "matmul"));
  CHECK(has(m, "inner dimensions"));
  CHECK(has(m, "(4, 5)"));
}

TEST_CASE("matmul with batch axes that do not broadcast") {
  Graph g;
  const Var a = g.input("a", {2, 3, 4}), b = g.input("b", {3, 4, 5});
  CHECK(has(message_of<ShapeError>([&] { matmul(a, b); }), "batch axes"));
}

TEST_CASE("mixing f32 and f64 is a dtype error") {
  Graph g;
  const Var a = g.input("a", {2}, DType::f32), b = g.input("b", {2}, DType::f64);
  const std::string m = message_of<DTypeError>([&] { mul(a, b); });
  CHECK(has(m, "f32"));
  CHECK(has(m, "f64"));
}

TEST_CASE("float op on integer tensor") {
  Graph g;
  const Var t = g.input("tokens", {3}, DType::i32);
  const std::string m = message_of<DTypeError>([&] { exp(t); });
  CHECK(has(m, "exp"));
  CHECK(has(m, "i32"));
}

TEST_CASE("axis out of range") {
  Graph g;
  const Var x = g.input("x", {2, 3});
  const std::string m = message_of<ValueError>([&] { softmax(x, 2); });
  CHECK(has(m, "softmax"));
  CHECK(has(m, "axis 2"));
}

TEST_CASE("reshape to a different number of elements") {
  Graph g;
  const Var x = g.input("x", {2, 3});
  const std::string m = message_of<ShapeError>([&] { reshape(x, {4, 2}); });
  CHECK(has(m, "(2, 3)"));
  CHECK(has(m, "(4, 2)"));
}

TEST_CASE("layer_norm gamma of the wrong shape") {
  Graph g;
  const Var x = g.input("x", {2, 4});
  const Var gamma = g.param("gamma", {3}, Init::ones());
  const std::string m = message_of<ShapeError>([&] { layer_norm(x, 1, 1e-5, gamma); });
  CHECK(has(m, "gamma"));
  CHECK(has(m, "(4,)"));
}

TEST_CASE("cross_entropy labels of the wrong shape") {
  Graph g;
  const Var logits = g.input("logits", {2, 5, 3});
  const Var labels = g.input("labels", {2, 5}, DType::i32);
  const std::string m = message_of<ShapeError>([&] { cross_entropy(logits, labels); });
  CHECK(has(m, "labels"));
  CHECK(has(m, "(2, 3)"));
}

TEST_CASE("label outside [0, V) at run time names the position and the range") {
  Graph g;
  const Var logits = g.input("logits", {2, 4, 3});
  const Var labels = g.input("labels", {2, 3}, DType::i32);
  const Var loss = cross_entropy(logits, labels);
  Program p = compile(g, {loss});
  const xt::xarray<float> lv = xt::zeros<float>({2, 4, 3});
  const xt::xarray<std::int32_t> bad = {{0, 1, 2}, {3, 4, 0}};
  const std::string m = message_of<IndexError>([&] { p.run({{logits, lv}, {labels, bad}}); });
  CHECK(has(m, "index 4"));
  CHECK(has(m, "[1, 1]"));
  CHECK(has(m, "[0, 4)"));
}

TEST_CASE("embedding index out of range") {
  Graph g;
  const Var table = g.param("table", {5, 2}, Init::normal(0, 1));
  const Var tokens = g.input("tokens", {3}, DType::i32);
  Program p = compile(g, {embedding(table, tokens)});
  const xt::xarray<std::int32_t> bad = {1, -1, 2};
  const std::string m = message_of<IndexError>([&] { p.run({{tokens, bad}}); });
  CHECK(has(m, "embedding"));
  CHECK(has(m, "index -1"));
}

TEST_CASE("a length above the sequence length") {
  Graph g;
  const Var lengths = g.input("lengths", {2}, DType::i32);
  Program p = compile(g, {sequence_mask(lengths, 3, DType::f32)});
  const xt::xarray<std::int32_t> bad = {2, 5};
  const std::string m = message_of<IndexError>([&] { p.run({{lengths, bad}}); });
  CHECK(has(m, "length 5"));
  CHECK(has(m, "[0, 3]"));
}

TEST_CASE("missing feed names the input") {
  Graph g;
  const Var x = g.input("x", {2});
  const Var y = g.input("y", {2});
  Program p = compile(g, {x + y});
  const xt::xarray<float> v = {1.0f, 2.0f};
  const std::string m = message_of<FeedError>([&] { p.run({{x, v}}); });
  CHECK(has(m, "missing feed"));
  CHECK(has(m, "'y'"));
}

TEST_CASE("feed of the wrong shape") {
  Graph g;
  const Var x = g.input("x", {2, 3});
  Program p = compile(g, {x * 2.0});
  const xt::xarray<float> v = xt::zeros<float>({3, 2});
  const std::string m = message_of<FeedError>([&] { p.run({{x, v}}); });
  CHECK(has(m, "'x'"));
  CHECK(has(m, "(3, 2)"));
  CHECK(has(m, "(2, 3)"));
}

TEST_CASE("feed of the wrong dtype") {
  Graph g;
  const Var x = g.input("x", {2});
  Program p = compile(g, {x * 2.0});
  const xt::xarray<double> v = {1.0, 2.0};
  const std::string m = message_of<FeedError>([&] { p.run({{x, v}}); });
  CHECK(has(m, "f64"));
  CHECK(has(m, "f32"));
}

TEST_CASE("non-scalar output without a seed gradient") {
  Graph g;
  const Var x = g.param("x", {3}, Init::ones());
  const std::string m = message_of<GradientError>([&] { grad(g, x * 2.0, {x}); });
  CHECK(has(m, "non-scalar"));
}

TEST_CASE("gradient with respect to an integer input") {
  Graph g;
  const Var t = g.input("tokens", {3}, DType::i32);
  const Var table = g.param("table", {4, 2}, Init::ones());
  const std::string m = message_of<GradientError>([&] { grad(g, sum(embedding(table, t)), {t}); });
  CHECK(has(m, "'tokens'"));
  CHECK(has(m, "i32"));
}

TEST_CASE("second derivative through layer_norm is refused clearly") {
  Graph g(0, DType::f64);
  const Var x = g.param("x", {2, 3}, Init::normal(0, 1));
  const Var gx = grad(g, sum(square(layer_norm(x))), {x})[0];
  const std::string m = message_of<GradientError>([&] { grad(g, sum(gx), {x}); });
  CHECK(has(m, "layer_norm_grad"));
  CHECK(has(m, "no gradient rule"));
}

TEST_CASE("duplicate input and parameter names") {
  Graph g;
  g.input("x", {2});
  const std::string m = message_of<ValueError>([&] { g.param("x", {2}, Init::zeros()); });
  CHECK(has(m, "'x'"));
  CHECK(has(m, "already used"));
}

TEST_CASE("operands from two graphs") {
  Graph g1, g2;
  const Var a = g1.input("a", {2}), b = g2.input("b", {2});
  CHECK(has(message_of<ValueError>([&] { add(a, b); }), "different graphs"));
}

TEST_CASE("dropout probability outside [0, 1)") {
  Graph g;
  const Var x = g.input("x", {2});
  CHECK(has(message_of<ValueError>([&] { dropout(x, 1.5); }), "p must be in [0, 1)"));
}

TEST_CASE("concat of parts that do not fit") {
  Graph g;
  const Var a = g.input("a", {2, 3}), b = g.input("b", {3, 3});
  const std::string m = message_of<ShapeError>([&] { concat({a, b}, 1); });
  CHECK(has(m, "concat"));
  CHECK(has(m, "(3, 3)"));
}

TEST_CASE("reading an intermediate value whose memory was reused") {
  Graph g;
  const Var x = g.input("x", {2});
  const Var hidden = exp(x);
  const Var y = hidden * 2.0;
  Program p = compile(g, {y});
  CHECK(has(message_of<ValueError>([&] { (void)p.get(hidden); }), "list it as an output"));
}

TEST_CASE("gradcheck refuses an f32 graph") {
  Graph g;
  const Var x = g.param("x", {2}, Init::ones());
  CHECK(has(message_of<DTypeError>([&] { gradcheck(g, sum(x), {x}); }), "f64"));
}
