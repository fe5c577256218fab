// The fused scaled_dot_product_attention: values and gradients against PyTorch (golden/attention.txt),
// agreement with the unfused composition softmax(q k^T * scale + bias) -> dropout -> @ v on random
// inputs (including its dropout keep decisions), memory linear in the sequence length, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <xgrad/nn.hpp>
#include <xgrad/xgrad.hpp>

#include "golden.hpp"
#include "program_checks.hpp"

using namespace xg;

namespace {

const testing::Golden& fixtures() {
  static const testing::Golden golden("attention.txt");
  return golden;
}

double worst_relative_error(const xt::xarray<double>& got, const xt::xarray<double>& want) {
  REQUIRE(got.shape() == want.shape());
  double worst = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double error = std::abs(got.flat(i) - want.flat(i)) / std::max(1.0, std::abs(want.flat(i)));
    worst = std::isnan(error) ? INFINITY : std::max(worst, error);
  }
  return worst;
}

/// The unfused composition the fused op replaces.
Var unfused_attention(Var q, Var k, Var v, std::optional<Var> bias, double scale, double dropout_p) {
  Var scores = matmul(q, k, false, true) * scale;
  if (bias) scores = scores + *bias;
  return matmul(dropout(softmax(scores, -1), dropout_p), v);
}

using Attention = Var (*)(Var, Var, Var, std::optional<Var>, double, double);

/// The fused op, non-causal, in the signature the unfused composition has.
Var fused_attention(Var q, Var k, Var v, std::optional<Var> bias, double scale, double dropout_p) {
  return scaled_dot_product_attention(q, k, v, bias, scale, dropout_p);
}

struct Problem {
  std::int64_t batch, heads, q_len, k_len, dim, v_dim;
  std::optional<Shape> bias;   // shape of a random bias
  bool block_bias = false;     // add causal + padding with one sequence of length 0 (needs q_len == k_len)
};

/// Output and gradients (q, k, v, bias) of sum(attention * w), one run, in `dtype`.
std::vector<xt::xarray<double>> evaluate(Attention attention, const Problem& p, DType dtype, double dropout_p,
                                         bool training, std::uint64_t run) {
  Graph g(11, dtype);
  // Inputs, not parameters: the graph's generator is then untouched before the dropout seed is drawn,
  // so the fused and the unfused graph draw the same seed.
  const Var q = g.input("q", {p.batch, p.heads, p.q_len, p.dim});
  const Var k = g.input("k", {p.batch, p.heads, p.k_len, p.dim});
  const Var v = g.input("v", {p.batch, p.heads, p.k_len, p.v_dim});
  std::vector<Var> wrt{q, k, v};
  std::optional<Var> bias;
  if (p.bias) {
    bias = g.input("bias", *p.bias);
    wrt.push_back(*bias);
  }
  std::optional<Var> full_bias = bias;
  if (p.block_bias) {
    const Var lengths = g.constant(Tensor(xt::xarray<std::int32_t>(xt::arange<std::int32_t>(0, static_cast<int>(p.batch)) * 3)));
    const Var blocked = nn::causal_bias(g, p.k_len, dtype) + nn::key_padding_bias(lengths, p.k_len, dtype);
    full_bias = bias ? *bias + blocked : blocked;
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(p.dim));
  const Var out = attention(q, k, v, full_bias, scale, dropout_p);
  xt::xarray<double> weights = xt::cos(xt::arange<double>(0.0, static_cast<double>(out.shape().numel())) * 0.7);
  weights.reshape(std::vector<std::size_t>(out.shape().begin(), out.shape().end()));
  const Var objective = sum(out * g.constant(Tensor(weights).cast(dtype)));
  std::vector<Var> outputs{out};
  for (Var d : grad(g, objective, wrt)) outputs.push_back(d);
  Program program = compile(g, outputs);
  program.set_training(training);
  program.set_run_index(run);

  std::vector<Tensor> values;
  std::vector<Feed> feeds;
  for (std::size_t i = 0; i < wrt.size(); ++i) {
    const auto n = static_cast<std::size_t>(wrt[i].shape().numel());
    xt::xarray<double> x = xt::sin(xt::arange<double>(0.0, static_cast<double>(n)) * (1.3 + 0.4 * static_cast<double>(i)) + 0.2) * 1.5;
    x.reshape(std::vector<std::size_t>(wrt[i].shape().begin(), wrt[i].shape().end()));
    values.push_back(Tensor(x).cast(dtype));
  }
  for (std::size_t i = 0; i < wrt.size(); ++i) feeds.push_back({wrt[i], TensorRef(values[i])});
  program.run(feeds);
  std::vector<xt::xarray<double>> results;
  for (Var o : outputs) results.push_back(program.get(o).cast(DType::f64).as<double>());
  return results;
}

void check_agreement(const Problem& p, DType dtype, double tolerance, double dropout_p = 0.0, bool training = false) {
  CAPTURE(dtype);
  CAPTURE(dropout_p);
  CAPTURE(training);
  const auto fused = evaluate(fused_attention, p, dtype, dropout_p, training, 5);
  const auto unfused = evaluate(unfused_attention, p, dtype, dropout_p, training, 5);
  REQUIRE(fused.size() == unfused.size());
  const std::string names[] = {"output", "d q", "d k", "d v", "d bias"};
  for (std::size_t i = 0; i < fused.size(); ++i) {
    CAPTURE(names[i]);
    CHECK(worst_relative_error(fused[i], unfused[i]) <= tolerance);
  }
}

}  // namespace

TEST_CASE("fused attention matches PyTorch's softmax(q k^T * scale + bias) @ v, values and gradients") {
  for (const std::string c : {"plain", "padding", "causal_padding_blocked", "cross_bias", "tiles"}) {
    CAPTURE(c);
    const auto& f = fixtures();
    Graph g(0, DType::f64);
    std::vector<Var> inputs;
    std::vector<Feed> feeds;
    for (const std::string name : {"q", "k", "v", "bias"}) {
      if (!f.records().contains(c + ".input." + name)) continue;
      const Tensor& value = f[c + ".input." + name];
      inputs.push_back(g.input(name, value.shape()));
      feeds.push_back({inputs.back(), TensorRef(value)});
    }
    const std::optional<Var> bias = inputs.size() == 4 ? std::optional<Var>(inputs[3]) : std::nullopt;
    const Var out = scaled_dot_product_attention(inputs[0], inputs[1], inputs[2], bias, f.f64(c + ".scale")());
    const Var objective = sum(out * g.constant(f[c + ".output_weights"]));
    std::vector<Var> outputs{out};
    for (Var d : grad(g, objective, inputs)) outputs.push_back(d);
    Program p = compile(g, outputs);
    p.run(feeds);
    CHECK(worst_relative_error(p.get(out).as<double>(), f.f64(c + ".output")) <= 1e-10);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const std::string record = c + ".grad_input." + inputs[i].node().name;
      CAPTURE(record);
      CHECK(worst_relative_error(p.get(outputs[i + 1]).as<double>(), f.f64(record)) <= 1e-10);
    }
  }
}

TEST_CASE("fused attention agrees with the unfused composition on random inputs") {
  const std::vector<Problem> problems{
      {2, 3, 5, 5, 4, 4, std::nullopt},
      {2, 3, 5, 5, 4, 4, Shape{2, 1, 1, 5}},
      {2, 3, 6, 6, 4, 3, Shape{6, 6}, true},
      {2, 3, 4, 4, 4, 4, std::nullopt, true},
      {2, 2, 3, 7, 4, 6, Shape{2, 1, 3, 7}},
      {1, 2, 3, 7, 2, 2, Shape{2, 3, 1}},            // a bias broadcast along the keys
      {2, 2, 3, 7, 4, 4, Shape{2, 2, 3, 7}},          // one bias element per score
      {1, 2, 150, 150, 8, 8, Shape{1, 1, 1, 150}, true},  // several query blocks and key tiles
      {1, 1, 70, 300, 5, 3, Shape{70, 300}},
  };
  for (const Problem& p : problems) {
    CAPTURE(p.q_len);
    CAPTURE(p.k_len);
    check_agreement(p, DType::f64, 1e-12);
    check_agreement(p, DType::f32, 2e-5);
    check_agreement(p, DType::f64, 1e-12, 0.3, /*training=*/true);
    check_agreement(p, DType::f64, 1e-12, 0.3, /*training=*/false);
  }
}

TEST_CASE("fused attention drops exactly the probabilities the unfused dropout mask drops") {
  // With v the identity, the output is the dropped probability matrix itself: a zero marks a dropped
  // element (every probability is positive), so the two zero patterns must coincide.
  const std::size_t S = 40;
  auto two_runs = [S](Attention attention) {
    Graph g(3, DType::f64);
    const Var q = g.input("q", {2, 2, 40, 4}), k = g.input("k", {2, 2, 40, 4});
    const xt::xarray<double> identity = xt::broadcast(xt::eye<double>(S), std::vector<std::size_t>{2, 2, S, S});
    const Var out = attention(q, k, g.constant(Tensor(identity)), std::nullopt, 0.5, 0.4);
    Program p = compile(g, {out});
    p.set_training(true);
    xt::xarray<double> qv = xt::sin(xt::arange<double>(0.0, 2.0 * 2 * 40 * 4) * 0.37);
    qv.reshape({2, 2, 40, 4});
    std::vector<xt::xarray<double>> runs;
    for (int run = 0; run < 2; ++run) {
      p.run({{q, qv}, {k, qv}});
      runs.push_back(p.get(out).as<double>());
    }
    return runs;
  };
  const auto fused = two_runs(fused_attention), unfused = two_runs(unfused_attention);
  for (std::size_t run = 0; run < 2; ++run) {
    CHECK(xt::all(xt::equal(xt::equal(fused[run], 0.0), xt::equal(unfused[run], 0.0))));
    CHECK(worst_relative_error(fused[run], unfused[run]) <= 1e-14);
  }
  const double kept = static_cast<double>(xt::sum(xt::not_equal(fused[0], 0.0))()) / static_cast<double>(fused[0].size());
  CHECK(kept == doctest::Approx(0.6).epsilon(0.05));
  CHECK(xt::any(xt::not_equal(xt::equal(fused[0], 0.0), xt::equal(fused[1], 0.0))));  // a new mask every run
}

TEST_CASE("fused attention's training memory grows linearly in the sequence length") {
  auto arena_bytes = [](Attention attention, std::int64_t S) {
    Graph g(1);
    const Var q = g.param("q", {1, 2, S, 16}, Init::normal(0.0, 1.0));
    const Var k = g.param("k", {1, 2, S, 16}, Init::normal(0.0, 1.0));
    const Var v = g.param("v", {1, 2, S, 16}, Init::normal(0.0, 1.0));
    const Var bias = nn::key_padding_bias(g.input("lengths", {1}, DType::i32), S, DType::f32);
    const Var loss = sum(square(attention(q, k, v, bias, 0.25, 0.1)));
    std::vector<Var> outputs{loss};
    for (Var d : grad(g, loss, {q, k, v})) outputs.push_back(d);
    return static_cast<double>(compile(g, outputs).memory().arena_bytes);
  };
  // A key-padding bias is linear in S (an (S, S) causal bias would not be, fused or not).
  const double fused_512 = arena_bytes(fused_attention, 512);
  const double fused_2048 = arena_bytes(fused_attention, 2048);
  const double unfused_2048 = arena_bytes(unfused_attention, 2048);
  CHECK(fused_2048 / fused_512 < 4.5);  // 4x the length: linear, not 16x
  CHECK(fused_2048 * 16 < unfused_2048);
}

TEST_CASE("fused attention names the nodes and shapes of bad inputs") {
  Graph g;
  const Var q = g.input("q", {2, 4, 5, 8}), k = g.input("k", {2, 4, 6, 8}), v = g.input("v", {2, 4, 6, 3});
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(g.input("q3", {4, 5, 8}), k, v, std::nullopt, 1.0),
                       doctest::Contains("queries node 3 (input 'q3') has shape (4, 5, 8), expected (B, H, Sq, d)"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, g.input("k7", {2, 4, 6, 7}), v, std::nullopt, 1.0),
                       doctest::Contains("keys node 4 (input 'k7') of shape (2, 4, 6, 7) do not fit queries node 0 "
                                         "(input 'q') of shape (2, 4, 5, 8): expected (2, 4, Sk, 8)"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, g.input("v5", {2, 4, 5, 3}), std::nullopt, 1.0),
                       doctest::Contains("values node 5 (input 'v5') of shape (2, 4, 5, 3) do not fit keys"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, g.input("bias", {2, 1, 1, 5}), 1.0),
                       doctest::Contains("bias node 6 (input 'bias') of shape (2, 1, 1, 5) does not broadcast to the "
                                         "scores' shape (B, H, Sq, Sk) = (2, 4, 5, 6)"),
                       ShapeError);
  CHECK_THROWS_AS(scaled_dot_product_attention(q, k, v, g.input("wide", {3, 2, 4, 5, 6}), 1.0), ShapeError);
  CHECK_THROWS_AS(scaled_dot_product_attention(q, k, v, g.input("b64", {5, 6}, DType::f64), 1.0), DTypeError);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, std::nullopt, 1.0, 1.0),
                       doctest::Contains("dropout p must be in [0, 1), got 1"), ValueError);
  CHECK_THROWS_AS(scaled_dot_product_attention(q, k, v, std::nullopt, NAN), ValueError);
}

TEST_CASE("fused attention is differentiable once") {
  Graph g(2, DType::f64);
  const Var q = g.param("q", {1, 1, 3, 2}, Init::normal(0.0, 1.0));
  const Var first = grad(g, sum(scaled_dot_product_attention(q, q, q, std::nullopt, 1.0)), {q})[0];
  CHECK_THROWS_WITH_AS(grad(g, sum(first), {q}), doctest::Contains("attention_backward"), GradientError);
}

TEST_CASE("the causal flag computes what an explicit (S, S) causal bias computes") {
  for (const std::int64_t S : {5, 70, 150}) {  // one tile; two query blocks; two key tiles
    INFO("S = ", S);
    Graph g(3, DType::f64);
    const Var q = g.param("q", {2, 2, S, 4}, Init::normal(0.0, 1.0));
    const Var k = g.param("k", {2, 2, S, 4}, Init::normal(0.0, 1.0));
    const Var v = g.param("v", {2, 2, S, 3}, Init::normal(0.0, 1.0));
    const Var w = g.param("w", {2, 2, S, 3}, Init::uniform(0.5, 1.5));
    const Var lengths = g.input("lengths", {2}, DType::i32);
    const Var padding = nn::key_padding_bias(lengths, S, DType::f64);
    const Var flagged = sum(scaled_dot_product_attention(q, k, v, padding, 0.4, 0.0, true) * w);
    const Var biased = sum(unfused_attention(q, k, v, nn::causal_bias(g, S, DType::f64) + padding, 0.4, 0.0) * w);
    std::vector<Var> outputs{flagged, biased};
    for (Var d : grad(g, flagged, {q, k, v})) outputs.push_back(d);
    for (Var d : grad(g, biased, {q, k, v})) outputs.push_back(d);
    Program p = compile(g, outputs);
    const xt::xarray<std::int32_t> lens{static_cast<std::int32_t>(S), static_cast<std::int32_t>(S / 2 + 1)};
    p.run({{lengths, lens}});
    for (std::size_t i = 0; i < 4; ++i) {
      const auto got = p.get<double>(outputs[i == 0 ? 0 : 1 + i]);
      const auto want = p.get<double>(outputs[i == 0 ? 1 : 4 + i]);
      CHECK(worst_relative_error(got, want) < 1e-12);
    }
  }
}

namespace {

/// Every output's value after one training run, and the dump that places them.
struct Run {
  std::vector<xt::xarray<float>> values;
  std::string dump;
};
Run run_once(Graph& g, const std::vector<Var>& outputs, const std::vector<Feed>& feeds, const CompileOptions& options) {
  Program p = compile(g, outputs, options);
  p.set_training(true);
  p.run(feeds);
  Run run{{}, p.dump()};
  for (Var v : outputs) run.values.push_back(p.get<float>(v));
  return run;
}

/// The arena offset of node `id` in a dump.
std::size_t offset_of(const std::string& dump, int id) {
  const auto node = testing::dumped_node(dump, id);
  REQUIRE(node.has_value());
  REQUIRE(node->offset.has_value());
  return *node->offset;
}

}  // namespace

TEST_CASE("attention's gradients take the bytes of the q, k and v that die in its backward pass, with the same bits") {
  // Sequence-major self-attention (the models' projections), and cross attention over several key
  // tiles and query blocks with a bias, causal masking and dropout (q, k, v computed, head-major).
  struct Case {
    std::string name;
    bool projections;
    std::int64_t q_len, k_len;
    bool causal;
    double dropout;
  };
  for (const Case& c : {Case{"self-attention", true, 70, 70, true, 0.0}, Case{"cross attention", false, 70, 300, false, 0.2}}) {
    CAPTURE(c.name);
    Graph g(5);
    const Var x = g.input("x", {2, c.q_len, 16}), memory = g.input("memory", {2, c.k_len, 16});
    const Var lengths_in = g.input("lengths", {2}, DType::i32);
    Var out;
    std::vector<Var> wrt{x};
    if (c.projections) {
      out = nn::self_attention(x, std::nullopt, "attn", {.heads = 2, .causal = c.causal});
      for (Var p : g.params()) wrt.push_back(p);
    } else {
      wrt.push_back(memory);
      const Var q = permute(reshape(tanh(x), {2, c.q_len, 2, 8}), {0, 2, 1, 3});
      const Var kv = permute(reshape(memory * 0.5, {2, c.k_len, 2, 8}), {0, 2, 1, 3});
      const Var bias = nn::key_padding_bias(lengths_in, c.k_len, DType::f32);
      out = scaled_dot_product_attention(q, kv * 0.7, kv * kv, bias, 0.3, c.dropout, c.causal);
    }
    const Var loss = sum(square(out));
    std::vector<Var> outputs{loss};
    for (Var d : grad(g, loss, wrt)) outputs.push_back(d);
    xt::xarray<float> xs = xt::sin(xt::arange<float>(0.0f, static_cast<float>(2 * c.q_len * 16)) * 0.3f);
    xt::xarray<float> ms = xt::cos(xt::arange<float>(0.0f, static_cast<float>(2 * c.k_len * 16)) * 0.7f);
    xs.reshape({2, static_cast<std::size_t>(c.q_len), 16});
    ms.reshape({2, static_cast<std::size_t>(c.k_len), 16});
    const xt::xarray<std::int32_t> lengths{static_cast<std::int32_t>(c.k_len), static_cast<std::int32_t>(c.k_len / 3)};
    std::vector<Feed> feeds{{x, xs}};
    if (!c.projections) feeds.insert(feeds.end(), {{memory, ms}, {lengths_in, lengths}});
    const Run apart = run_once(g, outputs, feeds, {.in_place = false, .threads = 1});
    for (int threads : {1, 2, 3}) {
      CAPTURE(threads);
      const Run shared = run_once(g, outputs, feeds, {.threads = threads});
      for (std::size_t i = 0; i < outputs.size(); ++i) CHECK(xt::all(xt::equal(shared.values[i], apart.values[i])));
      const auto backward = testing::first_dumped_node(shared.dump, " attention_backward ");
      REQUIRE(backward.has_value());
      REQUIRE(backward->inputs.size() >= 3);
      REQUIRE(backward->offset.has_value());
      // The forward record is read by the row statistics, not by the backward pass proper.
      const auto row_stats = testing::first_dumped_node(shared.dump, " attention_row_stats ");
      REQUIRE(row_stats.has_value());
      CHECK(std::find(backward->inputs.begin(), backward->inputs.end(), row_stats->inputs[0]) == backward->inputs.end());
      const auto record = testing::dumped_node(shared.dump, row_stats->inputs[0]);
      REQUIRE(record.has_value());
      CHECK(record->line.find(" attention ") != std::string::npos);
      // dQ's part starts where q is; dK's and dV's follow where k and v were placed.
      const std::size_t at = *backward->offset;
      CHECK(at == offset_of(shared.dump, backward->inputs[0]));
      CHECK(offset_of(shared.dump, backward->inputs[1]) == at + static_cast<std::size_t>(2 * c.q_len * 16 * 4));
      CHECK(offset_of(shared.dump, backward->inputs[2]) == at + static_cast<std::size_t>(2 * (c.q_len + c.k_len) * 16 * 4));
    }
    const auto apart_backward = testing::first_dumped_node(apart.dump, " attention_backward ");
    REQUIRE(apart_backward.has_value());
    CHECK(apart_backward->offset != offset_of(apart.dump, apart_backward->inputs[0]));
  }
}

TEST_CASE("attention's gradients keep their own bytes when a bias gradient is a part, or q, k and v are one value") {
  for (const bool learned_bias : {true, false}) {
    CAPTURE(learned_bias);
    Graph g(6);
    const Var x = g.input("x", {1, 2, 40, 8});
    const Var t = tanh(x) * 2.0;  // dies in the backward pass
    std::vector<Var> wrt{x};
    Var out;
    if (learned_bias) {
      const Var bias = g.param("bias", {1, 1, 40, 40}, Init::normal(0.0, 1.0));
      wrt.push_back(bias);
      out = scaled_dot_product_attention(t, x * 0.5, x * 1.5, bias, 0.4, 0.0, false);
    } else {
      out = scaled_dot_product_attention(t, t, t, std::nullopt, 0.4, 0.0, true);
    }
    const Var loss = sum(square(out));
    std::vector<Var> outputs{loss};
    for (Var d : grad(g, loss, wrt)) outputs.push_back(d);
    xt::xarray<float> xs = xt::sin(xt::arange<float>(0.0f, 640.0f) * 0.45f);
    xs.reshape({1, 2, 40, 8});
    const Run apart = run_once(g, outputs, {{x, xs}}, {.in_place = false});
    const Run shared = run_once(g, outputs, {{x, xs}}, {});
    for (std::size_t i = 0; i < outputs.size(); ++i) CHECK(xt::all(xt::equal(shared.values[i], apart.values[i])));
    const auto backward = testing::first_dumped_node(shared.dump, " attention_backward ");
    REQUIRE(backward.has_value());
    CHECK(backward->offset != offset_of(shared.dump, backward->inputs[0]));
  }
}
