// The optimizing passes of compile(): each rewrite on a small graph (what it removes, what it must
// leave alone), and the promise that they change no bit: every model family's training values
// with all passes on equal those with none, in f32 and f64, with 1, 2 and 3 threads. (Generated
// models compile with the passes on; test_generated.cpp checks them bit for bit against Programs.)
#include <cmath>
#include <limits>
#include <cstring>
#include <memory>
#include <random>

#include <doctest/doctest.h>

#include "program_checks.hpp"
#include "trained_model.hpp"
#include "xgrad/xgrad.hpp"

using namespace xg;
using testing::rewrites;
using testing::same_bits;

namespace {

/// Scheduled nodes of op `op` in a Program's dump (its lines after the passes' "# " summary).
std::size_t scheduled(const Program& p, std::string_view op) {
  const std::string dump = p.dump();
  std::size_t n = 0;
  for (std::size_t start = 0; start < dump.size();) {
    const std::size_t end = std::min(dump.find('\n', start), dump.size());
    const std::string_view line(dump.data() + start, end - start);
    if (line.starts_with("%") && line.find(fmt::format(" {} ", op)) != std::string_view::npos) ++n;
    start = end + 1;
  }
  return n;
}

Tensor random_tensor(DType dtype, std::vector<std::size_t> shape, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  xt::xarray<double> v = xt::zeros<double>(shape);
  for (auto& e : v) e = normal(rng);
  return dtype == DType::f32 ? Tensor(xt::xarray<float>(v)) : Tensor(v);
}

xt::xarray<float> ramp(std::vector<std::size_t> shape, float scale) {
  xt::xarray<float> x = xt::zeros<float>(shape);
  for (std::size_t i = 0; i < x.size(); ++i) x.flat(i) = scale * static_cast<float>((static_cast<int>(i * 37 % 23) - 11));
  return x;
}

}  // namespace

TEST_CASE("common subexpressions are computed once, and an output merged away is still readable") {
  Graph g;
  const Var x = g.input("x", {4, 8});
  const Var a = exp(x), b = exp(x);
  const Var y = a * b;
  const xt::xarray<float> xv = ramp({4, 8}, 0.1f);
  Program on = compile(g, {y, b});
  Program off = compile(g, {y, b}, {.passes = CompilePasses::none()});
  CHECK(rewrites(on, "eliminate_common_subexpressions") == 1);
  CHECK(on.steps() == off.steps() - 1);
  on.run({{x, xv}});
  off.run({{x, xv}});
  CHECK(same_bits(on.get(y), off.get(y)));
  CHECK(same_bits(on.get(b), off.get(b)));  // b is a's value now
  CHECK(on.dump().find("= %") != std::string::npos);
}

TEST_CASE("simplify: exact identities go, inexact ones stay") {
  Graph g;
  const Var x = g.input("x", {4, 8});
  CHECK(compile(g, {x * 1.0}).steps() == 0);
  CHECK(compile(g, {x / 1.0}).steps() == 0);
  CHECK(compile(g, {x - 0.0}).steps() == 0);
  CHECK(compile(g, {x + -0.0}).steps() == 0);
  CHECK(compile(g, {x + 0.0}).steps() == 1);   // -0 + +0 is +0: not x
  CHECK(compile(g, {x * 2.0}).steps() == 1);
  CHECK(compile(g, {x - -0.0}).steps() == 1);  // -0 - -0 is +0
  // Shape changes are not identities: (4, 8) * ones(3, 4, 8) broadcasts x.
  const Var ones = g.constant(Tensor(xt::xarray<float>(xt::ones<float>({3, 4, 8}))));
  CHECK(compile(g, {x * ones}).steps() == 1);
  // A permute undone, a reshape of a reshape, an identity broadcast.
  const Var back = permute(permute(x, {1, 0}), {1, 0});
  Program p = compile(g, {exp(back)});
  CHECK(p.steps() == 1);
  CHECK(rewrites(p, "simplify") >= 1);
}

TEST_CASE("simplify: a broadcast feeding an op that broadcasts is absorbed, with the same bits") {
  Graph g;
  const Var x = g.input("x", {4, 8});
  const Var s = g.input("s", {1, 8});
  const Var y = broadcast_to(s, {4, 8}) * x;
  const xt::xarray<float> xv = ramp({4, 8}, 0.3f), sv = ramp({1, 8}, 0.7f);
  Program on = compile(g, {y});
  Program off = compile(g, {y}, {.passes = CompilePasses::none()});
  CHECK(on.steps() == 1);
  CHECK(off.steps() == 2);
  on.run({{x, xv}, {s, sv}});
  off.run({{x, xv}, {s, sv}});
  CHECK(same_bits(on.get(y), off.get(y)));
}

TEST_CASE("sum of products: the loss mask's sum(-log p * mask) is one kernel call, bit for bit") {
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(dtype);
    Graph g(0, dtype);
    // 3 * 37 elements: the whole-array sum ends in a scalar tail after its SIMD batches.
    const Var x = g.input("x", {3, 37});
    const Var lengths = g.input("lengths", {3}, DType::i32);
    const Var mask = sequence_mask(lengths, 37, dtype);
    const Var loss = sum(-x * mask) / sum(mask);
    Program on = compile(g, {loss});
    Program off = compile(g, {loss}, {.passes = CompilePasses::none()});
    CHECK(rewrites(on, "fuse_sum_of_products") == 1);
    CHECK(scheduled(on, "sum_of_product") == 1);
    CHECK(on.steps() == off.steps() - 2);  // neg, mul and sum: one kernel
    CHECK(on.dump().find("negate_a=true, negate_b=false") != std::string::npos);
    // Signed zeros, an infinity under the mask (inf * 0 is NaN), values whose sum rounds.
    xt::xarray<double> xv = ramp({3, 37}, 0.37f);
    xv(0, 0) = -0.0;
    xv(0, 1) = 0.0;
    xv(1, 36) = std::numeric_limits<double>::infinity();
    xv(2, 5) = 1e-3;
    const xt::xarray<std::int32_t> lv{37, 20, 35};
    const Tensor xt_value = dtype == DType::f32 ? Tensor(xt::xarray<float>(xt::cast<float>(xv))) : Tensor(xv);
    on.run({{x, TensorRef(xt_value)}, {lengths, lv}});
    off.run({{x, TensorRef(xt_value)}, {lengths, lv}});
    CHECK(same_bits(on.get(loss), off.get(loss)));
    const auto value = [&] { return dtype == DType::f32 ? static_cast<double>(on.get<float>(loss)()) : on.get<double>(loss)(); };
    CHECK(std::isnan(value()));
    xv(1, 36) = 1.5;
    const Tensor finite = dtype == DType::f32 ? Tensor(xt::xarray<float>(xt::cast<float>(xv))) : Tensor(xv);
    on.run({{x, TensorRef(finite)}, {lengths, lv}});
    off.run({{x, TensorRef(finite)}, {lengths, lv}});
    CHECK(same_bits(on.get(loss), off.get(loss)));
    CHECK(std::isfinite(value()));
  }
}

TEST_CASE("sum of products: over some axes, a negated second factor, a square, bit for bit; a broadcast factor or a read product stays") {
  Graph g;
  const Var a = g.input("a", {5, 6, 19});
  const Var b = g.input("b", {5, 6, 19});
  const Var c = g.input("c", {5, 1, 19});
  const Var rows = sum(a * -b, {2});                  // along rows: a SIMD sum per row
  const Var columns = sum(a * b, {0, 1}, true);       // across rows: added row by row
  const Var middle = sum(b * a, {1});
  const Var broadcast = sum(a * c, {1});              // a broadcast factor: not fused
  const Var kept = a * exp(b);
  const Var read_twice = sum(kept) + max(kept);       // the product has another reader: not fused
  const Var squares = sum(square(b), {0, 2});          // square(b) is b * b
  const std::vector<Var> outputs{rows, columns, middle, broadcast, read_twice, squares};
  Program on = compile(g, outputs);
  Program off = compile(g, outputs, {.passes = CompilePasses::none()});
  CHECK(rewrites(on, "fuse_sum_of_products") == 4);
  CHECK(scheduled(on, "sum_of_product") == 4);
  const xt::xarray<float> av = ramp({5, 6, 19}, 0.21f), bv = ramp({5, 6, 19}, -0.13f), cv = ramp({5, 1, 19}, 0.4f);
  on.run({{a, av}, {b, bv}, {c, cv}});
  off.run({{a, av}, {b, bv}, {c, cv}});
  for (Var v : outputs) {
    CAPTURE(v.describe());
    CHECK(same_bits(on.get(v), off.get(v)));
  }
  Program unfused = compile(g, outputs, {.passes = CompilePasses{.fuse_sum_of_products = false}});
  CHECK(scheduled(unfused, "sum_of_product") == 0);
}

TEST_CASE("constant folding computes constant-only values once, with the run's own kernels") {
  Graph g(0, DType::f64);
  const Var x = g.input("x", {3});
  const Var c = g.constant(Tensor(xt::xarray<double>{0.25, -1.5, 3.0}));
  const Var y = x * exp(tanh(c));
  Program on = compile(g, {y});
  Program off = compile(g, {y}, {.passes = CompilePasses::none()});
  CHECK(rewrites(on, "fold_constants") == 2);
  CHECK(on.steps() == 1);
  CHECK(off.steps() == 3);
  const xt::xarray<double> xv{2.0, 3.0, -1.0};
  on.run({{x, xv}});
  off.run({{x, xv}});
  CHECK(same_bits(on.get(y), off.get(y)));
  CHECK(on.get<double>(y)(0) == doctest::Approx(2.0 * std::exp(std::tanh(0.25))).epsilon(1e-15));
}

TEST_CASE("constant folding leaves dropout alone: its mask depends on the run") {
  Graph g;
  const Var c = g.constant(Tensor(xt::xarray<float>(xt::ones<float>({64}))));
  const Var y = dropout(c, 0.5);
  Program p = compile(g, {y});
  CHECK(rewrites(p, "fold_constants") == 0);
  p.set_training(true);
  p.run({});
  const auto first = p.get<float>(y);
  p.run({});
  CHECK(first != p.get<float>(y));
}

TEST_CASE("epilogue fusion: bias, activation and residual run inside the product, bit for bit") {
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(dtype);
    Graph g(3, dtype);
    // 200 rows: the product is cut into pieces, and 200 * 72 leaves a scalar tail after SIMD batches.
    const Var x = g.input("x", {4, 50, 48});
    const Var r = g.input("r", {4, 50, 72});
    const Var w = g.param("w", {48, 72}, Init::normal(0.0, 0.2));
    const Var bias = g.param("b", {72}, Init::normal(0.0, 0.5));
    const Var relu_out = relu(matmul(x, w) + bias) + r;
    const Var w2 = g.param("w2", {72, 48}, Init::normal(0.0, 0.2));
    const Var gelu_out = gelu(matmul(relu_out, w2, false, false), GeluApprox::tanh);
    const std::vector<Var> outputs{relu_out, gelu_out};
    Program on = compile(g, outputs, {.threads = 2});
    Program off = compile(g, outputs, {.threads = 2, .passes = CompilePasses::none()});
    CHECK(rewrites(on, "fuse_epilogues") == 2);
    CHECK(scheduled(on, "fused_matmul") == 2);
    CHECK(scheduled(on, "matmul") == 0);
    CHECK(on.dump().find("activation=relu, residual=true") != std::string::npos);
    CHECK(on.steps() == 2);
    CHECK(off.steps() == 6);
    CHECK(on.report().kernel_calls_before == 6);
    CHECK(on.report().kernel_calls_after == 2);
    CHECK(on.report().memory_bytes_after < on.report().memory_bytes_before);
    std::mt19937 rng(5);
    const Tensor x_value = random_tensor(dtype, {4, 50, 48}, rng), r_value = random_tensor(dtype, {4, 50, 72}, rng);
    on.run({{x, x_value}, {r, r_value}});
    off.run({{x, x_value}, {r, r_value}});
    for (Var v : outputs) {
      const Tensor a = on.get(v), b = off.get(v);
      CHECK(std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * size_of(dtype)) == 0);
    }
  }
}

/// The arena offset a Program's dump gives the first scheduled node whose line holds `marker`.
std::optional<std::size_t> arena_offset(const Program& p, std::string_view marker) {
  const std::optional<testing::DumpedNode> node = testing::first_dumped_node(p.dump(), marker);
  return node ? node->offset : std::nullopt;
}

TEST_CASE("epilogue fusion: ReLU's gradient gate runs inside the product, over the ReLU output, bit for bit") {
  for (DType dtype : {DType::f32, DType::f64}) {
    for (const bool keep_activation : {false, true}) {
      CAPTURE(dtype);
      CAPTURE(keep_activation);
      Graph g(3, dtype);
      // dH = dY W2^T is 512 x 256 over k = 128: eight pieces of rows, spread over the threads.
      const Var x = g.input("x", {8, 64, 128});
      const Var t = g.input("t", {8, 64, 128});
      const Var w1 = g.param("w1", {256, 128}, Init::normal(0.0, 0.1));
      const Var b1 = g.param("b1", {256}, Init::normal(0.0, 0.5));
      const Var w2 = g.param("w2", {128, 256}, Init::normal(0.0, 0.1));
      const Var h = relu(matmul(x, w1, false, true) + b1);
      const Var objective = sum(matmul(h, w2, false, true) * t);
      std::vector<Var> outputs = grad(g, objective, {x, w1, b1, w2});
      if (keep_activation) outputs.push_back(h);  // read to the end: the gradient may not take its bytes
      std::mt19937 rng(11);
      const Tensor x_value = random_tensor(dtype, {8, 64, 128}, rng);
      xt::xarray<double> tv = xt::zeros<double>({8, 64, 128});
      std::normal_distribution<double> normal;
      for (auto& v : tv) v = normal(rng);
      // Infinities reach dH: 0 * inf must stay NaN where the gate is shut, and 0 * negative -0.
      tv(0, 3, 5) = std::numeric_limits<double>::infinity();
      tv(5, 60, 127) = -std::numeric_limits<double>::infinity();
      const Tensor t_value = dtype == DType::f32 ? Tensor(xt::xarray<float>(tv)) : Tensor(tv);
      Program off = compile(g, outputs, {.threads = 1, .passes = CompilePasses::none()});
      off.run({{x, x_value}, {t, t_value}});
      for (int threads : {1, 2, 3}) {
        CAPTURE(threads);
        Program on = compile(g, outputs, {.threads = threads});
        const std::string dump = on.dump();
        REQUIRE(dump.find("gated=true") != std::string::npos);
        CHECK(dump.find(" greater ") == std::string::npos);
        const bool in_place = arena_offset(on, "gated=true") == arena_offset(on, "activation=relu");
        CHECK(in_place == !keep_activation);
        on.run({{x, x_value}, {t, t_value}});
        for (Var v : outputs) CHECK(same_bits(on.get(v), off.get(v)));
      }
    }
  }
}

TEST_CASE("epilogue fusion: dropout's gradient and ReLU's gate run inside the product, bit for bit in every run") {
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(dtype);
    Graph g(7, dtype);
    const Var x = g.input("x", {8, 64, 128});
    const Var w1 = g.param("w1", {256, 128}, Init::normal(0.0, 0.1));
    const Var w2 = g.param("w2", {128, 256}, Init::normal(0.0, 0.1));
    const Var y = matmul(dropout(relu(matmul(x, w1, false, true)), 0.25), w2, false, true);
    const Var objective = sum(square(y));
    std::vector<Var> outputs = grad(g, objective, {x, w1, w2});
    outputs.push_back(objective);
    std::mt19937 rng(13);
    const Tensor x_value = random_tensor(dtype, {8, 64, 128}, rng);
    for (int threads : {1, 3}) {
      CAPTURE(threads);
      Program off = compile(g, outputs, {.threads = 1, .passes = CompilePasses::none()});  // runs count from 0 in both
      Program on = compile(g, outputs, {.threads = threads});
      REQUIRE(on.dump().find("dropout=0.25, seed=") != std::string::npos);
      REQUIRE(on.dump().find("gated=true") != std::string::npos);
      // Training (a new mask each run), then evaluation (no mask).
      for (const bool training : {true, true, false}) {
        CAPTURE(training);
        on.set_training(training);
        off.set_training(training);
        on.run({{x, x_value}});
        off.run({{x, x_value}});
        for (Var v : outputs) CHECK(same_bits(on.get(v), off.get(v)));
      }
    }
  }
}

TEST_CASE("epilogue fusion keeps a value another op still reads") {
  Graph g;
  const Var x = g.input("x", {64, 32});
  const Var w = g.param("w", {32, 32}, Init::normal(0.0, 0.2));
  const Var b = g.param("b", {32}, Init::zeros());
  const Var pre = matmul(x, w) + b;
  const Var y = gelu(pre) * pre;  // the activation's input is read again: only the bias fuses
  Program p = compile(g, {y});
  CHECK(rewrites(p, "fuse_epilogues") == 1);
  CHECK(p.dump().find("activation=none") != std::string::npos);
}

namespace {

Var scalar(Graph& g, DType dtype, double value) {
  return g.constant(dtype == DType::f32 ? Tensor(xt::xarray<float>(static_cast<float>(value))) : Tensor(xt::xarray<double>(value)));
}

/// Compiles `outputs` with every pass and with every pass but elementwise fusion, runs both (in
/// training mode, twice: dropout masks depend on the run) with 1, 2 and 3 threads, and checks that
/// every output has the same bits. Returns the fused program's rewrites by fuse_elementwise.
std::size_t check_fusion_exact(Graph& g, const std::vector<Var>& outputs, const std::vector<Feed>& feeds) {
  CompilePasses unfused;
  unfused.fuse_elementwise = false;
  std::size_t fused_rewrites = 0;
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    Program on = compile(g, outputs, {.threads = threads});
    Program off = compile(g, outputs, {.threads = threads, .passes = unfused});
    fused_rewrites = rewrites(on, "fuse_elementwise");
    on.set_training(true);
    off.set_training(true);
    for (int run = 0; run < 2; ++run) {
      on.run(feeds);
      off.run(feeds);
      for (Var v : outputs) CHECK(same_bits(on.get(v), off.get(v)));
    }
  }
  return fused_rewrites;
}

}  // namespace

TEST_CASE("elementwise fusion: softmax minus one-hot with a (B, S, 1) broadcast is one loop, bit for bit") {
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(dtype);
    Graph g(1, dtype);
    // 4 * 80 * 64 elements: split across threads; rows of 64 (the broadcast's) are whole SIMD batches.
    const Var x = g.input("x", {4, 80, 64}), s = g.input("s", {4, 80, 1}), onehot = g.input("onehot", {4, 80, 64});
    const Var y = onehot - exp(x) * s;
    std::mt19937 rng(1);
    const Tensor xv = random_tensor(dtype, {4, 80, 64}, rng), sv = random_tensor(dtype, {4, 80, 1}, rng),
                 ov = random_tensor(dtype, {4, 80, 64}, rng);
    const std::vector<Feed> feeds{{x, xv}, {s, sv}, {onehot, ov}};
    CHECK(check_fusion_exact(g, {y}, feeds) == 1);
    Program p = compile(g, {y});
    CHECK(p.steps() == 1);
    CHECK(scheduled(p, "fused_elementwise") == 1);
    CHECK(p.report().kernel_calls_before == 3);
    CHECK(p.report().memory_bytes_after < p.report().memory_bytes_before);
    CHECK(p.dump().find("program=[exp(s0), mul(s3, s1), sub(s2, s4)], row_length=64") != std::string::npos);
  }
}

TEST_CASE("elementwise fusion: one long row keeps its scalar tail where the separate kernels had it") {
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(dtype);
    Graph g(2, dtype);
    // An odd element count: the last elements take the scalar path in every kernel, fused or not.
    const Var x = g.input("x", {20001}), r = g.input("r", {20001}), gr = g.input("g", {20001});
    // relu's gradient as autodiff writes it, a GELU, a residual and a dropout: all of one shape.
    const Var relu_grad = gr * greater(x, scalar(g, dtype, 0.0));
    const Var y = dropout(gelu(x, GeluApprox::tanh) + r, 0.25) + relu_grad;
    const Var z = where(greater(r, x), sigmoid(x), tanh(r) * 0.5);
    std::mt19937 rng(2);
    const Tensor xv = random_tensor(dtype, {20001}, rng), rv = random_tensor(dtype, {20001}, rng), gv = random_tensor(dtype, {20001}, rng);
    const std::vector<Feed> feeds{{x, xv}, {r, rv}, {gr, gv}};
    CHECK(check_fusion_exact(g, {y, z}, feeds) == 2);
    Program p = compile(g, {y, z});
    CHECK(p.steps() == 2);
    CHECK(p.dump().find("dropout_mask") != std::string::npos);
  }
}

TEST_CASE("elementwise fusion leaves rows whose SIMD batches would move, values read twice, and outputs") {
  Graph g(3);
  std::mt19937 rng(3);
  // A bias over rows of 37 and a unary op over the whole array: a row of 37 starts inside a SIMD
  // batch of the unary op, so the two cannot share a loop.
  const Var x = g.input("x", {6, 37}), b = g.input("b", {37});
  const Var misaligned = exp(x + b);
  // t is read by two ops that do not fuse with each other; u is an output itself.
  const Var t = exp(x), shared_a = t * x, shared_b = t + x;
  const Var u = tanh(x), from_output = u * 2.0;
  const Tensor xv = random_tensor(DType::f32, {6, 37}, rng), bv = random_tensor(DType::f32, {37}, rng);
  const std::vector<Feed> feeds{{x, xv}, {b, bv}};
  CHECK(check_fusion_exact(g, {misaligned}, feeds) == 0);
  CHECK(check_fusion_exact(g, {shared_a, shared_b}, feeds) == 0);
  CHECK(check_fusion_exact(g, {from_output, u}, feeds) == 0);
  // Rows of 64 (a multiple of every SIMD width) do fuse with a whole-array op.
  const Var x64 = g.input("x64", {6, 64}), b64 = g.input("b64", {64});
  const Tensor x64v = random_tensor(DType::f32, {6, 64}, rng), b64v = random_tensor(DType::f32, {64}, rng);
  const std::vector<Feed> aligned{{x64, x64v}, {b64, b64v}};
  CHECK(check_fusion_exact(g, {exp(x64 + b64)}, aligned) == 1);
}

TEST_CASE("elementwise fusion draws a dropout mask again in each loop that reads it, instead of storing it") {
  for (DType dtype : {DType::f32, DType::f64}) {
    CAPTURE(dtype);
    Graph g(5, dtype);
    const Var x = g.input("x", {8, 40, 64}), r = g.input("r", {8, 40, 64});
    const Var w = g.param("w", {64}, Init::normal(0.0, 1.0));
    const Var y = dropout(x, 0.3) + r;  // forward: x * mask + r
    const Var objective = sum(y * w);
    const std::vector<Var> dx = grad(g, objective, {x});  // backward: (w broadcast) * mask
    std::mt19937 rng(6);
    const Tensor xv = random_tensor(dtype, {8, 40, 64}, rng), rv = random_tensor(dtype, {8, 40, 64}, rng);
    const std::vector<Feed> feeds{{x, xv}, {r, rv}};
    const std::vector<Var> outputs{y, dx[0]};
    CHECK(check_fusion_exact(g, outputs, feeds) >= 2);
    Program p = compile(g, outputs);
    CHECK(scheduled(p, "dropout_mask") == 0);
    CHECK(scheduled(p, "fused_elementwise") >= 2);
    // The mask is really applied: in training some elements of x are dropped.
    p.set_training(true);
    p.run(feeds);
    const Tensor yv = p.get(y);
    std::size_t dropped = 0;
    visit_float(dtype, [&]<class T>() {
      const T* a = static_cast<const T*>(yv.data());
      const T* b = static_cast<const T*>(rv.data());
      for (std::int64_t i = 0; i < yv.numel(); ++i) dropped += a[i] == b[i] ? 1 : 0;
    });
    CHECK(dropped > 0);
    CHECK(dropped < static_cast<std::size_t>(yv.numel()));
  }
}

TEST_CASE("elementwise fusion does not reassociate") {
  Graph g(4);
  const Var a = g.input("a", {40}), b = g.input("b", {40}), c = g.input("c", {40});
  const Var y = (a + b) + c;
  xt::xarray<float> av = xt::ones<float>({40}) * 1e8f, bv = xt::ones<float>({40}) * -1e8f, cv = xt::ones<float>({40}) * 1e-3f;
  const std::vector<Feed> feeds{{a, av}, {b, bv}, {c, cv}};
  CHECK(check_fusion_exact(g, {y}, feeds) == 1);
  Program p = compile(g, {y});
  p.run(feeds);
  // (a + b) + c is c; a + (b + c) would be 0 in f32.
  CHECK(p.get<float>(y)(0) == 1e-3f);
  CHECK(p.get<float>(y)(39) == 1e-3f);
}

namespace {

void check_passes_change_no_bit(std::string_view family, std::string_view config) {
  for (std::string_view dtype : {"f32", "f64"}) {
    CAPTURE(dtype);
    testing::TrainedModel model(family, fmt::format("{} dtype={}", config, dtype));
    const auto unoptimized = model.run(std::make_shared<ThreadPool>(1), CompilePasses::none());
    for (int threads : {1, 2, 3}) {
      CAPTURE(threads);
      const auto optimized = model.run(std::make_shared<ThreadPool>(threads));
      REQUIRE(optimized.size() == unoptimized.size());
      for (std::size_t k = 0; k < optimized.size(); ++k) {
        CAPTURE(k);
        CHECK(optimized[k] == unoptimized[k]);
      }
    }
    // The passes did something: fewer kernel calls than the graph has, no head permutes left, and
    // every linear layer's bias inside its product.
    Program p = compile(model.graph, model.outputs);
    Program plain = compile(model.graph, model.outputs, {.passes = CompilePasses::none()});
    CHECK(p.report().kernel_calls_after < p.report().kernel_calls_before);
    CHECK(scheduled(plain, "permute") > 0);
    CHECK(scheduled(p, "permute") == 0);
    CHECK(scheduled(p, "fused_matmul") > 0);
    CHECK(scheduled(p, "fused_elementwise") > 0);
  }
}

}  // namespace

TEST_CASE("the passes change no bit of training: decoder LM") { check_passes_change_no_bit("decoder_lm", testing::kSplitDecoder); }
TEST_CASE("the passes change no bit of training: decoder LM without dropout, ReLU's gradient gate in the product") {
  const std::string config = "vocab=64 d_model=64 heads=4 d_ff=256 layers=2 batch=4 seq=64 dropout=0";
  check_passes_change_no_bit("decoder_lm", config);
  const testing::TrainedModel model("decoder_lm", config);
  CHECK(compile(model.graph, model.outputs).dump().find("gated=true") != std::string::npos);
}
TEST_CASE("the passes change no bit of training: encoder classifier") {
  check_passes_change_no_bit("encoder_classifier", testing::kSplitEncoder);
}
TEST_CASE("the passes change no bit of training: encoder-decoder") { check_passes_change_no_bit("seq2seq", testing::kSplitSeq2seq); }
