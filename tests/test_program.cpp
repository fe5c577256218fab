// compile() and Program::run(): dead nodes, memory plan, in-place reuse, parameter sharing,
// dropout modes, f32 kernels against f64, and forward values derived by hand.
#include <doctest/doctest.h>

#include <cmath>

#include <xgrad/xgrad.hpp>

#include "op_cases.hpp"

using namespace xg;

TEST_CASE("dead nodes are not scheduled") {
  Graph g;
  const Var x = g.input("x", {64, 64});
  const Var used = exp(x);
  const Var unused = matmul(x, x);
  (void)unused;
  Program p = compile(g, {used});
  CHECK(p.steps() == 1);
}

TEST_CASE("the memory plan reuses buffers: a chain of 10 ops needs far less than 10 tensors") {
  Graph g;
  const Var x = g.input("x", {256});
  Var y = x;
  for (int i = 0; i < 10; ++i) y = tanh(y * 1.5 + 0.1);
  // Unfused: elementwise fusion would compute the chain in one kernel and store nothing between.
  CompilePasses unfused;
  unfused.fuse_elementwise = false;
  Program p = compile(g, {y}, {.passes = unfused});
  const MemoryReport& m = p.memory();
  CHECK(m.tensor_bytes >= 20 * 256 * 4);
  CHECK(m.arena_bytes <= 2 * 256 * 4);
  CHECK(m.peak_live_bytes <= m.arena_bytes);
  const xt::xarray<float> xv = xt::linspace<float>(-1.0f, 1.0f, 256);
  p.run({{x, xv}});
  xt::xarray<float> expected = xv;
  for (int i = 0; i < 10; ++i) expected = xt::tanh(expected * 1.5f + 0.1f);
  // Ten rounds of x 1.5 amplify the last-bit differences between xtensor's tanh and the kernel's
  // (std::tanh in -Dsimd=none builds) to ~1e-5; a reuse bug would be off by O(1).
  CHECK(xt::allclose(p.get<float>(y), expected, 1e-4, 1e-5));
}

TEST_CASE("without in-place reuse the arena grows but the values are the same") {
  Graph g;
  const Var x = g.input("x", {100});
  const Var y = sigmoid(exp(x * 0.5) - 1.0);
  Program a = compile(g, {y});
  Program b = compile(g, {y}, CompileOptions{.in_place = false});
  const xt::xarray<float> xv = xt::linspace<float>(-3.0f, 3.0f, 100);
  a.run({{x, xv}});
  b.run({{x, xv}});
  CHECK(a.memory().arena_bytes < b.memory().arena_bytes);
  CHECK(a.get<float>(y) == b.get<float>(y));
}

TEST_CASE("programs share parameter values with their graph") {
  Graph g;
  const Var w = g.param("w", {3}, Init::constant(2.0));
  const Var x = g.input("x", {3});
  const Var y = sum(w * x);
  Program p = compile(g, {y});
  const xt::xarray<float> xv = {1.0f, 2.0f, 3.0f};
  p.run({{x, xv}});
  CHECK(p.get<float>(y)() == doctest::Approx(12.0));
  g.value(w).as<float>() = xt::xarray<float>{1.0f, 0.0f, -1.0f};
  p.run({{x, xv}});
  CHECK(p.get<float>(y)() == doctest::Approx(-2.0));
  CHECK(p.get<float>(w)(0) == 1.0f);
}

TEST_CASE("dropout: identity in evaluation, scaled Bernoulli mask in training, reproducible") {
  Graph g(42);
  const Var x = g.input("x", {10000});
  const Var y = dropout(x, 0.25);
  const Var dx = grad(g, sum(y * 3.0), {x})[0];
  Program p = compile(g, {y, dx});
  const xt::xarray<float> ones = xt::ones<float>({10000});
  p.run({{x, ones}});
  CHECK(p.get<float>(y) == ones);
  p.set_training(true);
  p.run({{x, ones}});
  const xt::xarray<float> first = p.get<float>(y);
  const double dropped = static_cast<double>(xt::sum(xt::equal(first, 0.0f))());
  CHECK(dropped / 10000.0 == doctest::Approx(0.25).epsilon(0.1));
  CHECK(xt::all(xt::equal(first, 0.0f) || xt::isclose(first, 1.0f / 0.75f)));
  CHECK(p.get<float>(dx) == first * 3.0f);  // the gradient goes through the same mask
  p.run({{x, ones}});
  CHECK(p.get<float>(y) != first);  // a new mask every run
  Program q = compile(g, {y});
  q.run({{x, ones}});
  q.set_training(true);
  q.run({{x, ones}});
  CHECK(q.get<float>(y) == first);  // same seed and run index (the second run), same mask
}

TEST_CASE("masks and one_hot") {
  Graph g;
  const Var lengths = g.input("lengths", {3}, DType::i32);
  const Var labels = g.input("labels", {2}, DType::i32);
  const Var mask = sequence_mask(lengths, 4, DType::f32);
  const Var causal = causal_mask(g, 3, DType::f32);
  const Var hot = one_hot(labels, 3);
  Program p = compile(g, {mask, causal, hot});
  const xt::xarray<std::int32_t> lv = {0, 2, 4}, yv = {2, 0};
  p.run({{lengths, lv}, {labels, yv}});
  CHECK(p.get<float>(mask) == xt::xarray<float>{{0, 0, 0, 0}, {1, 1, 0, 0}, {1, 1, 1, 1}});
  CHECK(p.get<float>(causal) == xt::xarray<float>{{1, 0, 0}, {1, 1, 0}, {1, 1, 1}});
  CHECK(p.get<float>(hot) == xt::xarray<float>{{0, 0, 1}, {1, 0, 0}});
}

TEST_CASE("forward values derived by hand") {
  Graph g;
  const Var a = g.input("a", {2, 3});
  const Var b = g.input("b", {3, 2});
  const Var prod = matmul(a, b);
  const Var row_max = max(a, {1});
  const Var col_sum = sum(a, {0}, true);
  const Var mid = slice(concat({a, a}, 1), 1, 2, 5);
  const Var t = transpose(a);
  const Var w = where(greater(a, g.scalar(2.0)), a, g.scalar(-1.0));
  Program p = compile(g, {prod, row_max, col_sum, mid, t, w});
  const xt::xarray<float> av = {{1, 2, 3}, {4, 5, 6}};
  const xt::xarray<float> bv = {{1, 0}, {0, 1}, {1, 1}};
  p.run({{a, av}, {b, bv}});
  CHECK(p.get<float>(prod) == xt::xarray<float>{{4, 5}, {10, 11}});
  CHECK(p.get<float>(row_max) == xt::xarray<float>{3, 6});
  CHECK(p.get<float>(col_sum) == xt::xarray<float>{{5, 7, 9}});
  CHECK(p.get<float>(mid) == xt::xarray<float>{{3, 1, 2}, {6, 4, 5}});
  CHECK(p.get<float>(t) == xt::xarray<float>{{1, 4}, {2, 5}, {3, 6}});
  CHECK(p.get<float>(w) == xt::xarray<float>{{-1, -1, 3}, {4, 5, 6}});
}

TEST_CASE("f32 kernels agree with f64 on every case of the gradient-check table") {
  for (const auto& c : testing::op_cases()) {
    CAPTURE(c.op);
    CAPTURE(c.variant);
    Graph g32(7, DType::f32), g64(7, DType::f64);
    const testing::CheckTarget t32 = c.build(g32), t64 = c.build(g64);
    std::vector<Var> out32{t32.y}, out64{t64.y};
    if (t32.y.shape().numel() == 1 && is_float(t32.y.dtype())) {
      for (Var v : grad(g32, t32.y, t32.wrt)) out32.push_back(v);
      for (Var v : grad(g64, t64.y, t64.wrt)) out64.push_back(v);
    }
    Program p32 = compile(g32, out32), p64 = compile(g64, out64);
    p32.run({});
    p64.run({});
    for (std::size_t i = 0; i < out32.size(); ++i) {
      const xt::xarray<double> v32 = p32.get(out32[i]).cast(DType::f64).as<double>();
      const xt::xarray<double> v64 = p64.get(out64[i]).cast(DType::f64).as<double>();
      CHECK(xt::allclose(v32, v64, 1e-4, 1e-4));
    }
  }
}

TEST_CASE("SIMD bodies and scalar tails agree with f64 on large, odd-sized arrays") {
  Graph g32(5, DType::f32), g64(5, DType::f64);
  auto build = [](Graph& g) {
    const Var x = g.param("x", {37, 129}, Init::normal(0.0, 1.0));
    const Var b = g.param("b", {129}, Init::uniform(0.5, 1.5));
    return std::vector<Var>{exp(x), log(b), sqrt(b), rsqrt(b), tanh(x), sigmoid(x), relu(x), erf(x), gelu(x),
                            gelu(x, GeluApprox::tanh), x / b, x - b, x * b, greater(x, b), softmax(x),
                            log_softmax(x), softmax(x, 0), layer_norm(x), sum(x, {1}), sum(x, {0}), max(x, {1}),
                            max(x, {0}), matmul(x, x, true, false)};
  };
  const std::vector<Var> o32 = build(g32), o64 = build(g64);
  Program p32 = compile(g32, o32), p64 = compile(g64, o64);
  p32.run({});
  p64.run({});
  for (std::size_t i = 0; i < o32.size(); ++i) {
    CAPTURE(i);
    CHECK(xt::allclose(p32.get(o32[i]).cast(DType::f64).as<double>(), p64.get<double>(o64[i]), 1e-4, 1e-4));
  }
}

TEST_CASE("profiling mode times every kernel call and reports per op") {
  Graph g;
  const Var x = g.input("x", {64, 64});
  const Var y = sum(tanh(matmul(x, x)) + x);
  Program p = compile(g, {y});
  const xt::xarray<float> xv = xt::ones<float>({64, 64});
  p.set_profiling(true);
  for (int i = 0; i < 3; ++i) p.run({{x, xv}});
  const std::string report = p.profile();
  CHECK(report.find("over 3 runs") != std::string::npos);
  // tanh and the add run as one fused kernel.
  for (const char* op : {"matmul", "fused_elementwise", "sum", "total"}) CHECK(report.find(op) != std::string::npos);
  p.set_profiling(false);
  p.run({{x, xv}});
  CHECK(p.profile().find("over 0 runs") != std::string::npos);
}
