// The memory-aware order compile() tries on every program (CompileOptions::memory_aware_order):
// kept where it lowers the peak of live bytes, with the same bits as graph order; a tie keeps graph
// order, so programs it does not help are exactly what they were.
#include <memory>
#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "program_checks.hpp"
#include "trained_model.hpp"
#include "xgrad/xgrad.hpp"

using namespace xg;
using testing::first_different;
using testing::rewrites;

namespace {

/// Three products of one input, built all three first and then their sums: graph order keeps the
/// three (64, 4096) values alive at once, running each sum right after its product keeps one (the
/// backward pass reads none of them). The gradient of x adds three contributions, so a reorder that changed which values a sum adds, or in
/// which order, would show in its bits.
struct Branches {
  static constexpr int kBranches = 3;
  static constexpr std::size_t kBig = 64 * 4096 * sizeof(float);
  Graph g{5};
  Var x;
  std::vector<Var> outputs;
  xt::xarray<float> xv = xt::zeros<float>({64, 16});

  Branches() {
    x = g.input("x", {64, 16});
    std::vector<Var> products;
    for (int k = 0; k < kBranches; ++k) {
      const Var w = g.param(fmt::format("w{}", k), {16, 4096}, Init::normal(0.0, 0.5));
      products.push_back(matmul(x, w, false, false));
    }
    Var y = sum(products[0]);
    for (int k = 1; k < kBranches; ++k) y = y + sum(products[static_cast<std::size_t>(k)]);
    std::vector<Var> wrt = g.params();
    wrt.push_back(x);
    outputs.push_back(y);
    for (Var d : grad(g, y, wrt)) outputs.push_back(d);
    for (std::size_t i = 0; i < xv.size(); ++i) xv.flat(i) = 0.05f * static_cast<float>(static_cast<int>(i * 29 % 31) - 15);
  }

  std::vector<Tensor> run(Program& p) {
    p.run({{x, xv}});
    std::vector<Tensor> values;
    for (Var v : outputs) values.push_back(p.get(v));
    return values;
  }
};

/// A Program's node lines (ids, ops, operands, arena offsets), without the summary: equal for two
/// Programs exactly when they place the same values at the same offsets.
std::string program_lines(const Program& p) {
  const std::string dump = p.dump();
  std::string lines;
  for (std::size_t start = 0; start < dump.size();) {
    const std::size_t end = std::min(dump.find('\n', start), dump.size());
    if (dump[start] != '#') lines.append(dump, start, end - start + 1);
    start = end + 1;
  }
  return lines;
}

}  // namespace

TEST_CASE("memory-aware order: independent branches run one at a time, with the same bits") {
  Branches b;
  Program graph_order = compile(b.g, b.outputs, {.memory_aware_order = false});
  Program ordered = compile(b.g, b.outputs);
  CHECK(graph_order.memory().peak_live_bytes >= Branches::kBranches * Branches::kBig);
  CHECK(ordered.memory().peak_live_bytes < 2 * Branches::kBig);
  CHECK(ordered.memory().arena_bytes < graph_order.memory().arena_bytes);
  CHECK(ordered.steps() == graph_order.steps());
  // The report and the dump say what the order did.
  const MemoryOrderReport& r = ordered.report().memory_order;
  CHECK(r.tried);
  CHECK(r.reordered);
  CHECK(r.peak_graph_order == graph_order.memory().peak_live_bytes);
  CHECK(r.peak_after == ordered.memory().peak_live_bytes);
  CHECK(rewrites(ordered, "schedule_for_memory") == 1);
  CHECK(ordered.dump().find(fmt::format("memory-aware order: peak live bytes {} -> {}", r.peak_graph_order, r.peak_after)) !=
        std::string::npos);
  CHECK(!graph_order.report().memory_order.tried);
  CHECK(graph_order.dump().find("memory-aware order") == std::string::npos);
  CHECK(first_different(b.run(ordered), b.run(graph_order)) == -1);
}

TEST_CASE("memory-aware order: a program it does not help keeps graph order") {
  // A chain: every value's only reader is the next op, so no order frees anything sooner.
  Graph g;
  const Var x = g.input("x", {64, 256});
  const Var y = sum(exp(tanh(x) * 2.0));
  Program on = compile(g, {y}, {.passes = CompilePasses::none()});
  Program off = compile(g, {y}, {.passes = CompilePasses::none(), .memory_aware_order = false});
  const MemoryOrderReport& r = on.report().memory_order;
  CHECK(r.tried);
  CHECK(!r.reordered);
  CHECK(r.peak_graph_order == r.peak_after);
  CHECK(r.peak_after == off.memory().peak_live_bytes);
  CHECK(rewrites(on, "schedule_for_memory") == 0);
  CHECK(on.dump().find(fmt::format("memory-aware order: graph order kept (peak live bytes {})", r.peak_after)) != std::string::npos);
  CHECK(program_lines(on) == program_lines(off));
}

namespace {

/// Every output of two training runs (dropout on) with and without the memory-aware order, f32 and
/// f64: the same bytes, and never a higher peak.
void check_order_changes_no_bit(std::string_view family, std::string_view config) {
  for (std::string_view dtype : {"f32", "f64"}) {
    CAPTURE(dtype);
    testing::TrainedModel model(family, fmt::format("{} dtype={}", config, dtype));
    const Program on = compile(model.graph, model.outputs);
    const Program off = compile(model.graph, model.outputs, {.memory_aware_order = false});
    CHECK(on.memory().peak_live_bytes <= off.memory().peak_live_bytes);
    CHECK(on.report().memory_order.peak_graph_order == off.memory().peak_live_bytes);
    if (!on.report().memory_order.reordered) CHECK(program_lines(on) == program_lines(off));
    const auto pool = std::make_shared<ThreadPool>(2);
    const auto reordered = model.run(CompileOptions{.pool = pool});
    CHECK(first_different(reordered, model.run(CompileOptions{.pool = pool, .memory_aware_order = false})) == -1);
  }
}

}  // namespace

TEST_CASE("the memory-aware order changes no bit of training: decoder LM") {
  check_order_changes_no_bit("decoder_lm", testing::kSplitDecoder);
}
TEST_CASE("the memory-aware order changes no bit of training: encoder classifier") {
  check_order_changes_no_bit("encoder_classifier", testing::kSplitEncoder);
}
TEST_CASE("the memory-aware order changes no bit of training: encoder-decoder") {
  check_order_changes_no_bit("seq2seq", testing::kSplitSeq2seq);
}
