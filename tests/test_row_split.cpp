// CompileOptions::memory_split_rows: when recomputation alone cannot fit a memory budget, the
// regions around the largest values run in chunks of rows. Checked against the program without a
// budget (the same values to rounding: only sums over rows are added in another order), for the
// same bits on any number of threads, and for the floor it lowers.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "program_checks.hpp"
#include "xgrad/xgrad.hpp"

using namespace xg;
using testing::rewrites;
using testing::same_bits;

namespace {

/// The smallest arena a budget can reach, from the ValueError of one no plan fits.
std::size_t floor_of(const Graph& g, const std::vector<Var>& outputs, CompileOptions options) {
  options.memory_budget = 1000;
  try {
    (void)compile(g, outputs, options);
  } catch (const ValueError& e) {
    const std::string message = e.what();
    const std::string_view marker = "the smallest arena reached is ";
    const std::size_t at = message.find(marker);
    REQUIRE(at != std::string::npos);
    return std::stoull(message.substr(at + marker.size()));
  }
  FAIL("a 1000-byte budget fitted");
  return 0;
}

/// Largest |a - b| over the largest |b| (or `smallest_scale`, when more), for two values of the
/// same shape.
template <class T>
double relative_difference(const Tensor& a, const Tensor& b, double smallest_scale = 0.0) {
  REQUIRE(a.shape() == b.shape());
  const auto& x = a.as<T>();
  const auto& y = b.as<T>();
  double diff = 0.0, scale = smallest_scale;
  for (std::size_t i = 0; i < y.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(x.flat(i)) - static_cast<double>(y.flat(i))));
    scale = std::max(scale, std::abs(static_cast<double>(y.flat(i))));
  }
  return scale == 0.0 ? diff : diff / scale;
}

/// A pre-norm feed-forward block with a wide GELU hidden layer, in f64: the hidden value (eight
/// times the input) is what a budget below recomputation's floor must split.
struct FeedForward {
  Graph g{3};
  Var x;
  std::vector<Var> outputs;
  xt::xarray<double> xv;

  FeedForward() {
    constexpr std::int64_t rows = 256, width = 32, hidden = 256;
    x = g.input("x", {4, rows / 4, width}, DType::f64);
    const Var gamma = g.param("gamma", {width}, Init::normal(1.0, 0.1), DType::f64);
    const Var w1 = g.param("w1", {width, hidden}, Init::normal(0.0, 0.2), DType::f64);
    const Var b1 = g.param("b1", {hidden}, Init::normal(0.0, 0.1), DType::f64);
    const Var w2 = g.param("w2", {hidden, width}, Init::normal(0.0, 0.1), DType::f64);
    const Var b2 = g.param("b2", {width}, Init::normal(0.0, 0.1), DType::f64);
    const Var n = layer_norm(x, 1, 1e-5, gamma);
    const Var y = x + matmul(gelu(matmul(n, w1, false, false) + b1), w2, false, false) + b2;
    const Var objective = mean(square(y));
    outputs.push_back(objective);
    for (Var d : grad(g, objective, g.params())) outputs.push_back(d);
    xv = xt::zeros<double>({std::size_t{4}, std::size_t{rows / 4}, std::size_t{width}});
    for (std::size_t i = 0; i < xv.size(); ++i) xv.flat(i) = 0.05 * static_cast<double>(static_cast<int>(i * 29 % 37) - 18);
  }

  std::vector<Tensor> run(Program& p) {
    p.run({{x, xv}});
    std::vector<Tensor> values;
    for (Var v : outputs) values.push_back(p.get(v));
    return values;
  }
};

}  // namespace

TEST_CASE("memory budget: a feed-forward block below recomputation's floor runs by rows, to rounding") {
  FeedForward model;
  Program plain = compile(model.g, model.outputs);
  const std::size_t floor = floor_of(model.g, model.outputs, {.memory_split_rows = false});
  const std::size_t budget = floor - 1;
  CHECK_THROWS_AS((void)compile(model.g, model.outputs, {.memory_budget = budget, .memory_split_rows = false}), ValueError);

  Program split = compile(model.g, model.outputs, {.memory_budget = budget});
  CHECK(split.memory().arena_bytes <= budget);
  const MemoryBudgetReport& r = split.report().memory_budget;
  CHECK(r.row_splits >= 1);
  CHECK(rewrites(split, "split_rows") == r.row_splits);
  CHECK(split.steps() == plain.steps() + r.extra_kernel_calls);
  const std::string dump = split.dump();
  CHECK(dump.find("split_rows") != std::string::npos);
  CHECK(dump.find("chunks of") != std::string::npos);

  const std::vector<Tensor> reference = model.run(plain), values = model.run(split);
  REQUIRE(values.size() == reference.size());
  for (std::size_t k = 0; k < values.size(); ++k) {
    CAPTURE(k);
    CHECK(relative_difference<double>(values[k], reference[k]) < 1e-12);
  }
  // The chunks are fixed by the shapes, so the bits are the same on any pool.
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    Program on_pool = compile(model.g, model.outputs, {.pool = std::make_shared<ThreadPool>(threads), .memory_budget = budget});
    const std::vector<Tensor> again = model.run(on_pool);
    for (std::size_t k = 0; k < again.size(); ++k) {
      CAPTURE(k);
      CHECK(same_bits(again[k], values[k]));
    }
  }
}

TEST_CASE("memory budget: W2's encoder layer fits below recomputation's floor") {
  // Post-norm, ReLU: the gated gradient product joins the region, and the weight and bias
  // gradients of both products become sums by chunks.
  Graph g(5);
  const Var x = g.input("x", {2, 256, 256});
  const Var lengths = g.input("lengths", {2}, DType::i32);
  const Var y = nn::encoder_layer(x, nn::key_padding_bias(lengths, 256, DType::f32), "layer",
                                  {256, 8, 1024, 0.0, nn::NormStyle::post, nn::Activation::relu, 1e-5});
  // Against a fed target: the mean square of a LayerNorm's output alone is about 1 whatever the
  // weights, and its gradients would be rounding noise.
  const Var target = g.input("target", {2, 256, 256});
  const Var objective = mean(square(y - target));
  std::vector<Var> outputs{objective};
  for (Var d : grad(g, objective, g.params())) outputs.push_back(d);
  const std::size_t floor = floor_of(g, outputs, {.memory_split_rows = false});
  Program plain = compile(g, outputs);
  Program split = compile(g, outputs, {.memory_budget = floor - 1});
  CHECK(split.memory().arena_bytes < floor);
  CHECK(split.report().memory_budget.row_splits >= 1);

  xt::xarray<float> xv = xt::zeros<float>({2, 256, 256});
  for (std::size_t i = 0; i < xv.size(); ++i) xv.flat(i) = 0.02f * static_cast<float>(static_cast<int>(i * 31 % 43) - 21);
  xt::xarray<float> tv = xt::zeros<float>({2, 256, 256});
  for (std::size_t i = 0; i < tv.size(); ++i) tv.flat(i) = 0.1f * static_cast<float>(static_cast<int>(i * 17 % 29) - 14);
  const xt::xarray<std::int32_t> lv{256, 200};
  plain.run({{x, xv}, {lengths, lv}, {target, tv}});
  split.run({{x, xv}, {lengths, lv}, {target, tv}});
  for (Var v : outputs) {
    CAPTURE(v.describe());
    // Against 1e-6 at least: the keys' bias gradient is zero but for rounding (softmax ignores a
    // shift along its row).
    CHECK(relative_difference<float>(split.get(v), plain.get(v), 1e-6) < 1e-4);
  }
}

TEST_CASE("concat along the leading axis: its parts are computed where the result lives") {
  Graph g(1);
  const Var x = g.input("x", {64, 16});
  const Var a = exp(x), b = tanh(x);
  const Var c = concat({a, b}, 0);
  const Var y = sum(c * c);
  Program in_place = compile(g, {c, y});
  Program copied = compile(g, {c, y}, {.in_place = false});
  const std::string dump = in_place.dump();
  const auto concat_node = testing::first_dumped_node(dump, " concat ");
  REQUIRE(concat_node.has_value());
  REQUIRE(concat_node->inputs.size() == 2);
  const auto first = testing::dumped_node(dump, concat_node->inputs[0]), second = testing::dumped_node(dump, concat_node->inputs[1]);
  REQUIRE((first && second && first->offset && second->offset && concat_node->offset));
  CHECK(*first->offset == *concat_node->offset);
  CHECK(*second->offset == *concat_node->offset + 64 * 16 * sizeof(float));
  CHECK(in_place.memory().arena_bytes < copied.memory().arena_bytes);
  xt::xarray<float> xv = xt::zeros<float>({64, 16});
  for (std::size_t i = 0; i < xv.size(); ++i) xv.flat(i) = 0.01f * static_cast<float>(static_cast<int>(i % 23) - 11);
  in_place.run({{x, xv}});
  copied.run({{x, xv}});
  CHECK(same_bits(in_place.get(c), copied.get(c)));
  CHECK(same_bits(in_place.get(y), copied.get(y)));
}
