// Shapes too large to count: every computation that derives an element or byte count from a shape
// (node shapes, broadcasting, reshape, concat, matmul's batch axes, the memory plan, checkpoints) must
// refuse an overflow with a ShapeError naming the node and the shape, never wrap around. Nothing here
// allocates a large block: every refusal comes before any memory is asked for.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

#include "error_message.hpp"
#include "util/checked.hpp"

using namespace xg;
using testing::has;
using testing::message_of;

namespace {
constexpr std::int64_t kBig = std::int64_t{1} << 40;
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
}  // namespace

TEST_CASE("checked::product counts elements and bytes; zero extents are skipped only in the overflow test") {
  using Dims = std::vector<std::int64_t>;
  CHECK(checked::product(Dims{}) == 1);
  CHECK(checked::product(Dims{2, 3, 4}) == 24);
  CHECK(checked::product(Dims{2, 3}, 8) == 48);
  CHECK(checked::product(Dims{5, 0}) == 0);
  CHECK(checked::product(Dims{kBig, kBig}) == std::nullopt);
  // NumPy's rule: an empty shape whose other extents overflow is refused too (its strides would).
  CHECK(checked::product(Dims{0, kBig, kBig}) == std::nullopt);
  CHECK(checked::product(Dims{kMax}) == kMax);
  CHECK(checked::product(Dims{kMax}, 4) == std::nullopt);
  CHECK(checked::product(Dims{-1}) == std::nullopt);
  CHECK(checked::product(std::vector<std::uint64_t>{std::uint64_t{1} << 63}) == std::nullopt);
  CHECK(checked::add(kMax, std::int64_t{1}) == std::nullopt);
  CHECK(checked::mul(std::int64_t{1} << 31, std::int64_t{1} << 31) == std::int64_t{1} << 62);
  CHECK(checked::mul(std::int64_t{1} << 32, std::int64_t{1} << 31) == std::nullopt);
}

TEST_CASE("Shape::numel and Tensor::zeros refuse a count that does not fit in 64 bits instead of wrapping") {
  CHECK(Shape{kBig, 4}.numel() == 4 * kBig);
  CHECK(Shape{0, 7}.numel() == 0);
  CHECK(has(message_of<ShapeError>([] { (void)Shape({kBig, kBig}).numel(); }), "(1099511627776, 1099511627776)"));
  CHECK_THROWS_AS(Tensor::zeros(DType::f32, {kBig, kBig}), ShapeError);
}

TEST_CASE("an input or parameter too large to count is refused when it is made, naming the node and the shape") {
  Graph g;
  const std::string m = message_of<ShapeError>([&] { g.input("a", {kBig, kBig}); });
  CHECK(has(m, "node 0 (input 'a')"));
  CHECK(has(m, "(1099511627776, 1099511627776)"));
  CHECK(g.size() == 0);
  // Bytes count, not only elements: 2^62 f32 elements are 2^64 bytes; 2^60 are 2^62 bytes.
  CHECK(has(message_of<ShapeError>([&] { g.param("w", {std::int64_t{1} << 31, std::int64_t{1} << 31}, Init::zeros()); }),
            "node 0 (param 'w')"));
  CHECK(g.size() == 0);
  CHECK_NOTHROW(g.input("f32", {std::int64_t{1} << 31, std::int64_t{1} << 29}));
  CHECK_THROWS_AS(g.input("f64", {std::int64_t{1} << 31, std::int64_t{1} << 29}, DType::f64), ShapeError);
  // An empty shape is still refused when its other extents overflow (NumPy's rule).
  CHECK_THROWS_AS(g.input("empty", {0, kBig, kBig}), ShapeError);
  CHECK_NOTHROW(g.input("empty_ok", {0, kBig}));
}

TEST_CASE("broadcasting and matmul batch axes that multiply past 64 bits name the op, the shape and the operands") {
  Graph g;
  const Var a = g.input("a", {kBig, 1}), b = g.input("b", {1, kBig});
  const std::string m = message_of<ShapeError>([&] { add(a, b); });
  CHECK(has(m, "node 2 (add)"));
  CHECK(has(m, "(1099511627776, 1099511627776)"));
  CHECK(has(m, "node 0 (input 'a')"));
  CHECK(has(m, "node 1 (input 'b')"));
  CHECK(g.size() == 2);

  const Var p = g.input("p", {kBig, 1, 2, 3}), q = g.input("q", {1, kBig, 3, 2});
  const std::string mm = message_of<ShapeError>([&] { matmul(p, q); });
  CHECK(has(mm, "(matmul)"));
  CHECK(has(mm, "(1099511627776, 1099511627776, 2, 2)"));
  CHECK_THROWS_AS(broadcast_to(g.scalar(1.0), {kBig, kBig}), ShapeError);
  CHECK_THROWS_AS(one_hot(g.input("labels", {kBig}, DType::i32), kBig, DType::f32), ShapeError);
}

TEST_CASE("reshape and concat compute their extents with checked arithmetic") {
  Graph g;
  const Var x = g.input("x", {2, 3});
  CHECK(has(message_of<ShapeError>([&] { reshape(x, {kBig, kBig}); }), "too large"));
  CHECK(has(message_of<ShapeError>([&] { reshape(x, {kBig, kBig, -1}); }), "too large"));
  const Var empty = g.input("empty", {0, 4});
  CHECK(has(message_of<ShapeError>([&] { reshape(empty, {-1, kBig, kBig}); }), "too large"));
  CHECK(reshape(x, {3, -1}).shape() == Shape{3, 2});

  // (2^61 - 1) f32 elements are 2^63 - 4 bytes: a valid node, whose copies cannot be concatenated.
  const Var v = g.input("v", {(std::int64_t{1} << 61) - 1});
  CHECK(has(message_of<ShapeError>([&] { concat({v, v}, 0); }), "(concat)"));
  CHECK(has(message_of<ShapeError>([&] { concat({v, v, v, v, v}, 0); }), "add up to more than 64 bits"));
}

TEST_CASE("a slice with an enormous step or bounds has the right extent and value") {
  Graph g;
  const Var x = g.input("x", {5});
  const Var one = slice(x, 0, 1, 5, kMax);
  CHECK(one.shape() == Shape{1});
  const Var none = slice(x, 0, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::min(), kMax);
  CHECK(none.shape() == Shape{0});
  const Var tail = slice(x, 0, 3, kMax, 1);
  CHECK(tail.shape() == Shape{2});
  Program p = compile(g, {one, tail});
  const xt::xarray<float> xv{10, 11, 12, 13, 14};
  p.run({{x, xv}});
  CHECK(p.get<float>(one) == xt::xarray<float>{11});
  CHECK(p.get<float>(tail) == xt::xarray<float>{13, 14});
}

TEST_CASE("compile refuses buffers whose bytes add up past what an arena can address, naming the node") {
  Graph g;
  // Each 2^62 bytes: valid nodes, but no arena holds two of them and their sum.
  const Var x = g.input("x", {std::int64_t{1} << 60}), y = g.input("y", {std::int64_t{1} << 60});
  const std::string m = message_of<ShapeError>([&] { compile(g, {x + y}); });
  CHECK(has(m, "compile"));
  CHECK(has(m, "node 1 (input 'y')"));
  CHECK(has(m, "(1152921504606846976,)"));
}

TEST_CASE("layers and helpers that make tables refuse sizes too large to count before allocating") {
  Graph g;
  CHECK(has(message_of<ShapeError>([&] { nn::sinusoidal_positions(g, kBig, kBig); }), "sinusoidal_positions"));
  CHECK(has(message_of<ShapeError>([&] { causal_mask(g, kBig * 4, DType::f32); }), "causal_mask"));
  const std::vector<std::vector<std::int32_t>> sequences{{1}, {2}, {3}};
  CHECK(has(message_of<ShapeError>([&] { pad_sequences(sequences, kMax, 0); }), "pad_sequences"));
  CHECK_THROWS_AS(pad_sequences(sequences, -1, 0), ValueError);
}

TEST_CASE("checkpoints: byte sizes are checked when a file is written and when one is read") {
  const float value = 0;
  const std::array<std::size_t, 2> huge{std::size_t{1} << 40, std::size_t{1} << 40};
  const std::vector<std::pair<std::string, TensorRef>> tensors{{"w", TensorRef(&value, DType::f32, huge)}};
  const std::string m = message_of<ShapeError>([&] { save_safetensors("/nonexistent/never-written.safetensors", tensors); });
  CHECK(has(m, "tensor 'w'"));
  CHECK(has(m, "(1099511627776, 1099511627776)"));

  // A header that claims such a tensor, with its empty data: refused, whatever the offsets.
  const std::string header = R"({"w":{"dtype":"F32","shape":[0,1099511627776,1099511627776],"data_offsets":[0,0]}})";
  std::vector<std::uint8_t> file(8);
  const std::uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  file.insert(file.end(), header.begin(), header.end());
  CHECK(has(message_of<CheckpointError>([&] { parse_safetensors(file); }), "overflows"));
}
