// CompileOptions::memory_budget: the arena shrinks below a budget by reordering ops and by
// recomputing forward values in the backward pass, with the same bits as without a budget; a budget
// no plan reaches is a ValueError that names it and the smallest arena reached.
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <doctest/doctest.h>

#include "program_checks.hpp"
#include "trained_model.hpp"
#include "xgrad/xgrad.hpp"

using namespace xg;
using testing::rewrites;
using testing::same_bits;

namespace {

/// A deep chain whose backward pass reads every layer's activations: an MLP whose layers gate tanh
/// by a sigmoid of the same pre-activation, with dropout (recomputed masks must repeat the
/// originals). The gradients of tanh and sigmoid read both outputs, so each layer keeps two values
/// that the one pre-activation can recompute, with elementwise fusion on as well as off.
struct Chain {
  Graph g{11};
  Var x;
  std::vector<Var> outputs;
  xt::xarray<float> xv;

  Chain() {
    x = g.input("x", {64, 128});
    Var h = x;
    for (int layer = 0; layer < 6; ++layer) {
      const Var w = g.param(fmt::format("w{}", layer), {128, 128}, Init::normal(0.0, 0.1));
      const Var b = g.param(fmt::format("b{}", layer), {128}, Init::normal(0.0, 0.1));
      const Var z = matmul(h, w, false, false) + b;
      h = dropout(tanh(z) * sigmoid(z), 0.1);
    }
    const Var objective = mean(square(h));
    outputs.push_back(objective);
    for (Var d : grad(g, objective, g.params())) outputs.push_back(d);
    xv = xt::zeros<float>({64, 128});
    for (std::size_t i = 0; i < xv.size(); ++i) xv.flat(i) = 0.01f * static_cast<float>(static_cast<int>(i * 37 % 41) - 20);
  }

  std::vector<Tensor> run(Program& p) {
    p.set_training(true);
    std::vector<Tensor> values;
    for (int r = 0; r < 2; ++r) {  // two runs: the second one's dropout masks differ from the first's
      p.run({{x, xv}});
      for (Var v : outputs) values.push_back(p.get(v));
    }
    return values;
  }
};

}  // namespace

TEST_CASE("memory budget: a chain's arena shrinks below the budget, with the same bits") {
  Chain c;
  Program plain = compile(c.g, c.outputs);
  const std::size_t arena = plain.memory().arena_bytes;
  // Four fifths: the greedy reaches 79% of this chain's arena (its floor: every parameter gradient
  // alive at the end, beside the first layer's pre-activation, which it keeps).
  const std::size_t budget = arena * 4 / 5;
  Program fitted = compile(c.g, c.outputs, {.memory_budget = budget});
  CHECK(fitted.memory().arena_bytes <= budget);
  const MemoryBudgetReport& r = fitted.report().memory_budget;
  CHECK(r.budget == budget);
  CHECK(r.arena_before == arena);
  CHECK(r.arena_after == fitted.memory().arena_bytes);
  CHECK(r.recomputed > 0);
  CHECK(r.extra_kernel_calls > 0);
  CHECK(fitted.steps() == plain.steps() + r.extra_kernel_calls);
  CHECK(fitted.matmul_flops() == plain.matmul_flops() + r.extra_matmul_flops);
  CHECK(rewrites(fitted, "rematerialize") == r.recomputed);
  // The dump says what was recomputed, where, and the summary what it cost.
  const std::string dump = fitted.dump();
  CHECK(dump.find("recomputes %") != std::string::npos);
  CHECK(dump.find("# recomputed in the backward pass") != std::string::npos);
  CHECK(dump.find(fmt::format("memory budget {} bytes", budget)) != std::string::npos);
  CHECK(testing::first_different(c.run(fitted), c.run(plain)) == -1);
}

TEST_CASE("memory budget: a budget the plain arena meets changes nothing") {
  Chain c;
  Program plain = compile(c.g, c.outputs);
  Program roomy = compile(c.g, c.outputs, {.memory_budget = plain.memory().arena_bytes});
  CHECK(roomy.memory().arena_bytes == plain.memory().arena_bytes);
  CHECK(roomy.steps() == plain.steps());
  CHECK(roomy.report().memory_budget.recomputed == 0);
  CHECK(!roomy.report().memory_budget.rescheduled);
  CHECK(rewrites(roomy, "rematerialize") == 0);
  // No budget: no budget line in the summary.
  CHECK(plain.dump().find("memory budget") == std::string::npos);
}

TEST_CASE("memory budget: below the minimum, a ValueError names the budget and the smallest arena") {
  Chain c;
  const std::size_t arena = compile(c.g, c.outputs).memory().arena_bytes;
  try {
    (void)compile(c.g, c.outputs, {.memory_budget = 4096});
    FAIL("a 4096-byte budget fitted");
  } catch (const ValueError& e) {
    const std::string message = e.what();
    CHECK(message.find("memory budget of 4096 bytes") != std::string::npos);
    CHECK(message.find(fmt::format("against {} bytes without a budget", arena)) != std::string::npos);
    const std::size_t at = message.find("the smallest arena reached is ");
    REQUIRE(at != std::string::npos);
    const std::size_t smallest = std::stoull(message.substr(at + std::string_view("the smallest arena reached is ").size()));
    CHECK(smallest > 4096);
    CHECK(smallest < arena);
    // It names where the live bytes peak and the largest values alive there.
    CHECK(message.find("the live bytes peak at node ") != std::string::npos);
    CHECK(message.find(" MiB") != std::string::npos);
    // The smallest arena it reports is one a budget of that size gets.
    const Program fitted = compile(c.g, c.outputs, {.memory_budget = smallest});
    CHECK(fitted.memory().arena_bytes <= smallest);
  }
  // A forward-only program has no backward pass to recompute in: its arena is all it can be.
  Graph g;
  const Var x = g.input("x", {256, 256});
  const Var y = sum(tanh(x) * x);
  const std::size_t plain = compile(g, {y}).memory().arena_bytes;
  CHECK_THROWS_AS((void)compile(g, {y}, {.memory_budget = plain / 2}), ValueError);
}

TEST_CASE("memory budget: a search aimed too low reports no more than a feasible budget reached") {
  // W2's encoder layer at 2048 tokens: aimed below its floor, the greedy recomputes values whose
  // copies hold the peak and raise the arena; it drops them again before it reports its smallest.
  Graph g(5);
  const Var x = g.input("x", {2, 1024, 256});
  const Var lengths = g.input("lengths", {2}, DType::i32);
  const Var y = nn::encoder_layer(x, nn::key_padding_bias(lengths, 1024, DType::f32), "layer",
                                  {256, 8, 1024, 0.0, nn::NormStyle::post, nn::Activation::relu, 1e-5});
  const Var objective = mean(square(y));
  const auto trainer = [&](std::optional<std::size_t> budget) {
    TrainerOptions options;
    options.compile.memory_budget = budget;
    options.compile.memory_split_rows = false;  // recomputation's own search (test_row_split.cpp splits)
    return Trainer(g, objective, optim::adamw_factory(0.01, std::nullopt), options);
  };
  const std::size_t plain = trainer(std::nullopt).program().memory().arena_bytes;
  const std::size_t feasible = trainer(plain * 3 / 4).program().memory().arena_bytes;
  CHECK(feasible < plain * 3 / 4);
  try {
    (void)trainer(plain * 3 / 5);
    FAIL("the budget fitted: choose a lower one");
  } catch (const ValueError& e) {
    const std::string message = e.what();
    const std::size_t at = message.find("the smallest arena reached is ");
    REQUIRE(at != std::string::npos);
    const std::size_t smallest = std::stoull(message.substr(at + std::string_view("the smallest arena reached is ").size()));
    CHECK(smallest <= feasible);
    CHECK(message.find("the live bytes peak at node ") != std::string::npos);
  }
}

TEST_CASE("memory budget: independent branches are reordered so that each big value dies before the next") {
  // Built as a, b, then their sums: in that order both (8, 4096) products are alive at once;
  // running each sum right after its product keeps one.
  Graph g(2);
  const Var x = g.input("x", {8, 16});
  const Var w1 = g.param("w1", {16, 4096}, Init::normal(0.0, 0.5));
  const Var w2 = g.param("w2", {16, 4096}, Init::normal(0.0, 0.5));
  const Var a = matmul(x, w1, false, false), b = matmul(x, w2, false, false);
  const Var y = sum(a) + sum(b);
  // Graph order, as compile() would keep it without its own memory-aware order: the budget reorders
  // even then.
  Program plain = compile(g, {y}, {.memory_aware_order = false});
  const std::size_t big = 8 * 4096 * sizeof(float);
  CHECK(plain.memory().peak_live_bytes >= 2 * big);
  Program ordered = compile(g, {y}, {.memory_aware_order = false, .memory_budget = big + big / 2});
  CHECK(ordered.report().memory_budget.rescheduled);
  CHECK(ordered.report().memory_budget.recomputed == 0);
  CHECK(ordered.steps() == plain.steps());
  CHECK(ordered.memory().arena_bytes <= big + big / 2);
  CHECK(rewrites(ordered, "schedule_for_memory") == 1);
  xt::xarray<float> xv = xt::zeros<float>({8, 16});
  for (std::size_t i = 0; i < xv.size(); ++i) xv.flat(i) = 0.1f * static_cast<float>(static_cast<int>(i % 7) - 3);
  plain.run({{x, xv}});
  ordered.run({{x, xv}});
  CHECK(same_bits(plain.get(y), ordered.get(y)));
}

namespace {

/// Every output of two training runs, with and without a budget that forces recomputation, in f32
/// and f64, with 1 and 2 threads: the same bytes.
void check_budget_changes_no_bit(std::string_view family, std::string_view config) {
  for (std::string_view dtype : {"f32", "f64"}) {
    CAPTURE(dtype);
    testing::TrainedModel model(family, fmt::format("{} dtype={}", config, dtype));
    const std::size_t arena = compile(model.graph, model.outputs).memory().arena_bytes;
    const auto reference = model.run(std::make_shared<ThreadPool>(1));
    // These small models reach about 80% of their arena (their parameter gradients are outputs,
    // alive to the end); 7/8 of it needs several values recomputed.
    const std::size_t budget = arena * 7 / 8;
    Program fitted = compile(model.graph, model.outputs, {.memory_budget = budget});
    CHECK(fitted.memory().arena_bytes <= budget);
    CHECK(fitted.report().memory_budget.recomputed > 0);
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      const auto values = model.run(CompileOptions{.pool = std::make_shared<ThreadPool>(threads), .memory_budget = budget});
      REQUIRE(values.size() == reference.size());
      for (std::size_t k = 0; k < values.size(); ++k) {
        CAPTURE(k);
        CHECK(values[k] == reference[k]);
      }
    }
  }
}

}  // namespace

TEST_CASE("a memory budget changes no bit of training: decoder LM") { check_budget_changes_no_bit("decoder_lm", testing::kSplitDecoder); }
TEST_CASE("a memory budget changes no bit of training: encoder classifier") {
  check_budget_changes_no_bit("encoder_classifier", testing::kSplitEncoder);
}
TEST_CASE("a memory budget changes no bit of training: encoder-decoder") { check_budget_changes_no_bit("seq2seq", testing::kSplitSeq2seq); }
