#include "op_cases.hpp"

namespace xg::testing {
namespace {

Var positive(Graph& g, const std::string& name, Shape shape) {
  return g.param(name, std::move(shape), Init::uniform(0.5, 2.0));
}
Var floats(Graph& g, xt::xarray<double> values) { return g.constant(Tensor(std::move(values)).cast(g.float_type())); }

using Unary = Var (*)(Var);
OpCase unary_case(std::string op, Unary f, bool needs_positive = false) {
  return {op, "(2, 3)", [f, needs_positive](Graph& g) {
            const Var x = needs_positive ? positive(g, "x", {2, 3}) : normal(g, "x", {2, 3});
            return CheckTarget{f(x), {x}};
          }};
}

using Binary = Var (*)(Var, Var);
std::vector<OpCase> binary_cases(const std::string& op, Binary f, bool positive_b = false) {
  auto make = [f, positive_b](Shape a_shape, Shape b_shape) {
    return [=](Graph& g) {
      const Var a = normal(g, "a", a_shape);
      const Var b = positive_b ? positive(g, "b", b_shape) : normal(g, "b", b_shape);
      return CheckTarget{f(a, b), {a, b}};
    };
  };
  return {{op, "(2, 3) . (2, 3)", make({2, 3}, {2, 3})},
          {op, "(2, 3) . (3,) broadcast", make({2, 3}, {3})},
          {op, "(2, 1, 3) . (4, 1) broadcast", make({2, 1, 3}, {4, 1})},
          {op, "() . (2, 2) broadcast", make({}, {2, 2})}};
}

std::vector<OpCase> build_cases() {
  std::vector<OpCase> cases{
      unary_case("neg", [](Var x) { return -x; }),
      unary_case("exp", exp),
      unary_case("log", log, true),
      unary_case("sqrt", sqrt, true),
      unary_case("rsqrt", rsqrt, true),
      unary_case("square", square),
      unary_case("tanh", tanh),
      unary_case("sigmoid", sigmoid),
      unary_case("relu", relu),
      unary_case("erf", erf),
      unary_case("gelu", [](Var x) { return gelu(x); }),
      {"gelu", "tanh approximation", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3});
         return CheckTarget{gelu(x, GeluApprox::tanh), {x}};
       }},
      {"scalar arithmetic", "2 - x * 3 + x / 4", [](Graph& g) {
         const Var x = normal(g, "x", {3});
         return CheckTarget{2.0 - x * 3.0 + x / 4.0 + 1.0 / (x * x + 1.0), {x}};
       }},
  };
  for (auto& c : binary_cases("add", add)) cases.push_back(c);
  for (auto& c : binary_cases("sub", sub)) cases.push_back(c);
  for (auto& c : binary_cases("mul", mul)) cases.push_back(c);
  for (auto& c : binary_cases("div", div, true)) cases.push_back(c);
  const std::vector<OpCase> more{
      {"where", "broadcast condition and values", [](Graph& g) {
         const Var a = normal(g, "a", {2, 3}), b = normal(g, "b", {3});
         return CheckTarget{where(reshape(floats(g, {1.0, 0.0}), {2, 1}), a, b), {a, b}};
       }},
      {"masked_fill", "-1e9 where masked", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3});
         return CheckTarget{softmax(masked_fill(x, floats(g, {0.0, 1.0, 0.0}), -1e9)), {x}};
       }},
      {"cast", "f64 -> f32 -> f64 (eps 1e-2)", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3});
         return CheckTarget{cast(cast(x, DType::f32), DType::f64) * 3.0, {x}};
       }, {1e-2, 1e-4, 1e-3}},
      {"sum", "all axes", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3, 4});
         return CheckTarget{sum(x), {x}};
       }},
      {"sum", "axes {0, 2} keepdims", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3, 4});
         return CheckTarget{sum(x, {0, 2}, true), {x}};
       }},
      {"mean", "axis -1", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3, 4});
         return CheckTarget{mean(x, {-1}), {x}};
       }},
      {"max", "axis 1", [](Graph& g) {
         const Var x = normal(g, "x", {2, 5, 3});
         return CheckTarget{max(x, {1}), {x}};
       }},
      {"max", "all axes keepdims", [](Graph& g) {
         const Var x = normal(g, "x", {3, 4});
         return CheckTarget{max(x, {}, true), {x}};
       }},
      {"reshape", "(2, 3, 4) -> (4, -1)", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3, 4});
         return CheckTarget{reshape(x, {4, -1}) * floats(g, {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}), {x}};
       }},
      {"permute", "(2, 3, 4) by (2, 0, 1)", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3, 4});
         return CheckTarget{permute(x, {2, 0, 1}), {x}};
       }},
      {"transpose", "last two axes", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3, 4});
         return CheckTarget{transpose(x), {x}};
       }},
      {"broadcast_to", "(3, 1) -> (2, 3, 4)", [](Graph& g) {
         const Var x = normal(g, "x", {3, 1});
         return CheckTarget{broadcast_to(x, {2, 3, 4}), {x}};
       }},
      {"slice", "axis 1, 1:5:2", [](Graph& g) {
         const Var x = normal(g, "x", {2, 6, 3});
         return CheckTarget{slice(x, 1, 1, 5, 2), {x}};
       }},
      {"slice", "negative bounds", [](Graph& g) {
         const Var x = normal(g, "x", {5, 2});
         return CheckTarget{slice(x, 0, -3, -1), {x}};
       }},
      {"concat", "three parts on axis 1", [](Graph& g) {
         const Var a = normal(g, "a", {2, 1, 3}), b = normal(g, "b", {2, 2, 3}), c = normal(g, "c", {2, 3, 3});
         return CheckTarget{concat({a, b, c}, 1), {a, b, c}};
       }},
      {"squeeze/unsqueeze", "round trip", [](Graph& g) {
         const Var x = normal(g, "x", {2, 1, 3});
         return CheckTarget{unsqueeze(squeeze(x, 1), 0) * floats(g, {1.0, 2.0, 3.0}), {x}};
       }},
      {"matmul", "(3, 4) @ (4, 5)", [](Graph& g) {
         const Var a = normal(g, "a", {3, 4}), b = normal(g, "b", {4, 5});
         return CheckTarget{matmul(a, b), {a, b}};
       }},
      {"matmul", "(2, 3, 4) @ (4, 5): a shared right operand", [](Graph& g) {
         const Var a = normal(g, "a", {2, 3, 4}), b = normal(g, "b", {4, 5});
         return CheckTarget{matmul(a, b), {a, b}};
       }},
      {"matmul", "transpose_a", [](Graph& g) {
         const Var a = normal(g, "a", {4, 3}), b = normal(g, "b", {4, 5});
         return CheckTarget{matmul(a, b, true, false), {a, b}};
       }},
      {"matmul", "transpose_b", [](Graph& g) {
         const Var a = normal(g, "a", {2, 3, 4}), b = normal(g, "b", {5, 4});
         return CheckTarget{matmul(a, b, false, true), {a, b}};
       }},
      {"matmul", "both transposed, batched", [](Graph& g) {
         const Var a = normal(g, "a", {2, 4, 3}), b = normal(g, "b", {2, 5, 4});
         return CheckTarget{matmul(a, b, true, true), {a, b}};
       }},
      {"matmul", "batch broadcast (2,1,3,4) @ (3,4,2)", [](Graph& g) {
         const Var a = normal(g, "a", {2, 1, 3, 4}), b = normal(g, "b", {3, 4, 2});
         return CheckTarget{matmul(a, b), {a, b}};
       }},
      {"matmul", "vector @ matrix @ vector", [](Graph& g) {
         const Var u = normal(g, "u", {3}), m = normal(g, "m", {3, 4}), v = normal(g, "v", {4});
         return CheckTarget{matmul(matmul(u, m), v), {u, m, v}};
       }},
      {"softmax", "axis -1", [](Graph& g) {
         const Var x = normal(g, "x", {2, 5});
         return CheckTarget{softmax(x), {x}};
       }},
      {"softmax", "axis 1 of (2, 4, 3)", [](Graph& g) {
         const Var x = normal(g, "x", {2, 4, 3});
         return CheckTarget{softmax(x, 1), {x}};
       }},
      {"log_softmax", "axis -1", [](Graph& g) {
         const Var x = normal(g, "x", {3, 4});
         return CheckTarget{log_softmax(x), {x}};
       }},
      {"log_softmax", "axis 0", [](Graph& g) {
         const Var x = normal(g, "x", {4, 3});
         return CheckTarget{log_softmax(x, 0), {x}};
       }},
      {"scaled_dot_product_attention", "no bias, Sq 3 != Sk 4, dv 3", [](Graph& g) {
         const Var q = normal(g, "q", {2, 2, 3, 4}), k = normal(g, "k", {2, 2, 4, 4}), v = normal(g, "v", {2, 2, 4, 3});
         return CheckTarget{scaled_dot_product_attention(q, k, v, std::nullopt, 0.5), {q, k, v}};
       }},
      {"scaled_dot_product_attention", "(B, 1, 1, Sk) bias with a gradient", [](Graph& g) {
         const Var q = normal(g, "q", {2, 2, 3, 4}), k = normal(g, "k", {2, 2, 4, 4}), v = normal(g, "v", {2, 2, 4, 4});
         const Var bias = normal(g, "bias", {2, 1, 1, 4});
         return CheckTarget{scaled_dot_product_attention(q, k, v, bias, 0.5), {q, k, v, bias}};
       }},
      {"scaled_dot_product_attention", "(Sq, Sk) and (H, Sq, 1) biases with gradients", [](Graph& g) {
         const Var q = normal(g, "q", {1, 2, 3, 2}), k = normal(g, "k", {1, 2, 5, 2}), v = normal(g, "v", {1, 2, 5, 2});
         const Var keys = normal(g, "keys_bias", {3, 5}), rows = normal(g, "rows_bias", {2, 3, 1});
         return CheckTarget{scaled_dot_product_attention(q, k, v, keys, 0.7) + scaled_dot_product_attention(q, k, v, rows, 0.7),
                            {q, k, v, keys, rows}};
       }},
      {"scaled_dot_product_attention", "full (B, H, Sq, Sk) bias", [](Graph& g) {
         const Var q = normal(g, "q", {2, 2, 3, 2}), k = normal(g, "k", {2, 2, 3, 2}), v = normal(g, "v", {2, 2, 3, 2});
         const Var bias = normal(g, "bias", {2, 2, 3, 3});
         return CheckTarget{scaled_dot_product_attention(q, k, v, bias, 1.0), {q, k, v, bias}};
       }},
      {"scaled_dot_product_attention", "causal + padding, lengths [3, 0]: all-blocked rows", [](Graph& g) {
         // The rows of sequence 1 see no key. Its queries are zeroed so that its scores are exactly the
         // bias (-1e9 or -2e9) in f32 and f64 alike: central differences cannot resolve a change of
         // 1e-6 on top of 1e9, and f32 would otherwise round away what f64 keeps. test_attention.cpp
         // checks such rows with non-zero queries against PyTorch and the unfused composition.
         const Var q = normal(g, "q", {2, 2, 4, 3}), k = normal(g, "k", {2, 2, 4, 3}), v = normal(g, "v", {2, 2, 4, 3});
         const Var blocked = reshape((1.0 - sequence_mask(ints(g, {3, 0}), 4, g.float_type())) * -1e9, {2, 1, 1, 4});
         const Var causal = (1.0 - causal_mask(g, 4, g.float_type())) * -1e9;
         const Var q_seen = q * reshape(floats(g, {1.0, 0.0}), {2, 1, 1, 1});
         return CheckTarget{scaled_dot_product_attention(q_seen, k, v, causal + blocked, 0.6), {q, k, v}};
       }},
      {"scaled_dot_product_attention", "causal flag with a (B, 1, 1, Sk) bias gradient, Sq 70 over two blocks", [](Graph& g) {
         const Var q = normal(g, "q", {2, 1, 70, 2}), k = normal(g, "k", {2, 1, 70, 2}), v = normal(g, "v", {2, 1, 70, 2});
         const Var bias = normal(g, "bias", {2, 1, 1, 70});
         return CheckTarget{scaled_dot_product_attention(q, k, v, bias, 0.8, 0.0, true), {q, k, v, bias}};
       }},
      {"scaled_dot_product_attention", "Sq 70, Sk 150: several query blocks and key tiles", [](Graph& g) {
         const Var q = normal(g, "q", {1, 2, 70, 2}), k = normal(g, "k", {1, 2, 150, 2}), v = normal(g, "v", {1, 2, 150, 2});
         const Var bias = normal(g, "bias", {1, 1, 1, 150});
         return CheckTarget{scaled_dot_product_attention(q, k, v, bias, 0.8), {q, k, v, bias}};
       }},
      {"layer_norm", "last axis with gamma and beta", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3, 5}), gamma = normal(g, "gamma", {5}), beta = normal(g, "beta", {5});
         return CheckTarget{layer_norm(x, 1, 1e-5, gamma, beta), {x, gamma, beta}};
       }},
      {"layer_norm", "last two axes, no affine", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3, 4});
         return CheckTarget{layer_norm(x, 2), {x}};
       }},
      {"embedding", "(2, 3) indices into (5, 4)", [](Graph& g) {
         const Var table = normal(g, "table", {5, 4});
         return CheckTarget{embedding(table, ints(g, {{0, 3, 3}, {4, 1, 0}})), {table}};
       }},
      {"embedding_grad", "scatter-add of repeated rows", [](Graph& g) {
         const Var rows = normal(g, "rows", {2, 3, 4});
         return CheckTarget{embedding_grad(rows, ints(g, {{0, 3, 3}, {4, 1, 0}}), 5), {rows}};
       }},
      {"pick", "axis 1 with ignore_index", [](Graph& g) {
         const Var x = normal(g, "x", {2, 4, 3});
         return CheckTarget{pick(x, ints(g, {{0, 3, -100}, {2, 2, 1}}), 1, -100), {x}};
       }},
      {"unpick", "axis -1", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3});
         return CheckTarget{unpick(x, ints(g, {{0, 3, 1}, {2, 2, 1}}), -1, 4), {x}};
       }},
      {"slice_scatter", "axis 0, 1:5:3", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3});
         return CheckTarget{slice_scatter(x, SliceAttr{0, 1, 5, 3, 6}), {x}};
       }},
      {"cross_entropy", "class axis 1, mean, ignore_index", [](Graph& g) {
         const Var logits = normal(g, "logits", {2, 5, 3});
         const Var labels = ints(g, {{1, 0, 4}, {3, 2, -100}});
         return CheckTarget{cross_entropy(logits, labels), {logits}};
       }},
      {"cross_entropy", "class axis -1, label smoothing 0.1, none", [](Graph& g) {
         const Var logits = normal(g, "logits", {4, 6});
         CrossEntropyOptions o;
         o.class_axis = -1;
         o.reduction = Reduction::none;
         o.label_smoothing = 0.1;
         return CheckTarget{cross_entropy(logits, ints(g, {5, 0, 2, 2}), o), {logits}};
       }},
      {"masked_mean", "gradient to values and mask", [](Graph& g) {
         const Var x = normal(g, "x", {2, 3}), mask = positive(g, "mask", {2, 3});
         return CheckTarget{masked_mean(x, mask), {x, mask}};
       }},
      {"loss mask", "sum(ce * mask) / sum(mask), lengths [2, 3]", [](Graph& g) {
         const Var logits = normal(g, "logits", {2, 4, 3});
         const Var mask_param = g.param("mask", {2, 3}, Init::ones());
         const Var mask = mask_param * sequence_mask(ints(g, {2, 3}), 3, g.float_type());
         CrossEntropyOptions o;
         o.reduction = Reduction::none;
         const Var loss = cross_entropy(logits, ints(g, {{1, 0, 3}, {2, 2, 1}}), o);
         return CheckTarget{sum(loss * mask) / sum(mask), {logits, mask_param}};
       }},
  };
  cases.insert(cases.end(), more.begin(), more.end());
  return cases;
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = build_cases();
  return cases;
}

GradcheckReport run_case(const OpCase& c) {
  Graph g(7, DType::f64);
  const CheckTarget t = c.build(g);
  std::vector<Feed> feeds;
  for (const auto& [var, value] : t.feeds) feeds.push_back({var, TensorRef(value)});
  return gradcheck(g, t.y, t.wrt, feeds, c.options);
}

}  // namespace xg::testing
