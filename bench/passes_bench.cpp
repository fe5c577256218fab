// What compile()'s optimizing passes do to each workload's training pass (forward and backward:
// the objective and every parameter gradient): kernel calls, bytes read and written by kernels that
// are not matrix products, the run's time and the share of it spent outside matrix products, with
// the passes off and on. bench/passes runs it; its last line is
// "W1 kernel calls per step: BEFORE -> AFTER".
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "timing.hpp"
#include "workloads.hpp"

using namespace xg;

namespace {

struct Measured {
  std::size_t kernel_calls = 0, memory_bytes = 0;
  double ms = 0.0, outside_products = 0.0;  // share of the run outside matrix products
};

bool is_product(std::string_view op) {
  return op == "matmul" || op == "fused_matmul" || op == "attention" || op == "attention_backward";
}

Measured measure(bench::Workload& w, const std::vector<Var>& outputs, const CompilePasses& passes, int warmup, int steps) {
  Program p = compile(w.graph, outputs, {.passes = passes});
  Measured m;
  m.kernel_calls = p.steps();
  m.memory_bytes = p.report().memory_bytes_after;
  m.ms = bench::median_ms(warmup, steps, [&] { p.run(w.feeds); });
  p.set_profiling(true);
  for (int i = 0; i < steps; ++i) p.run(w.feeds);
  double total = 0.0, outside = 0.0;
  for (const Program::StepTime& t : p.step_times()) {
    total += t.nanoseconds;
    if (!is_product(t.op)) outside += t.nanoseconds;
  }
  m.outside_products = total > 0.0 ? outside / total : 0.0;
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Kernel calls, non-GEMM memory traffic and time of each workload's training pass, compiler passes off and on"};
  std::vector<std::string> names{"W1", "W2", "W3"};
  int steps = 20, warmup = 3;
  bool dump = false;
  app.add_option("--workloads", names, "Workloads to run (W1 W2 W3 W4)")->delimiter(',')->capture_default_str();
  app.add_option("--steps", steps, "Timed runs per measurement (the median is reported)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "Untimed runs before the timed ones")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_flag("--dump", dump, "Print each workload's optimized training program (Program::dump) instead of measuring");
  CLI11_PARSE(app, argc, argv);

  fmt::print("{:<4} {:>8} {:>8} {:>14} {:>14} {:>9} {:>9} {:>9} {:>8} {:>8}\n", "", "calls", "calls", "non-GEMM MB",
             "non-GEMM MB", "ms", "ms", "speed-up", "outside", "outside");
  fmt::print("{:<4} {:>8} {:>8} {:>14} {:>14} {:>9} {:>9} {:>9} {:>8} {:>8}\n", "", "off", "on", "off", "on", "off", "on", "",
             "off", "on");
  std::string last_line;
  for (const std::string& name : names) {
    bench::Workload w;
    if (name == "W1") bench::build_gpt_tiny(w);
    else if (name == "W2") bench::build_encoder(w);
    else if (name == "W3") bench::build_seq2seq_small(w);
    else if (name == "W4") bench::build_gpt2(w, 64);
    else {
      fmt::print(stderr, "unknown workload '{}' (W1, W2, W3 or W4)\n", name);
      return 2;
    }
    std::vector<Var> outputs{w.objective};
    for (Var g : grad(w.graph, w.objective, w.graph.params())) outputs.push_back(g);
    if (dump) {
      fmt::print("{}:\n{}\n", name, compile(w.graph, outputs).dump());
      continue;
    }
    const int n = name == "W4" ? 3 : steps, warm = name == "W4" ? 1 : warmup;
    const Measured off = measure(w, outputs, CompilePasses::none(), warm, n);
    const Measured on = measure(w, outputs, CompilePasses{}, warm, n);
    fmt::print("{:<4} {:>8} {:>8} {:>14.2f} {:>14.2f} {:>9.2f} {:>9.2f} {:>8.2f}x {:>7.1f}% {:>7.1f}%\n", name, off.kernel_calls,
               on.kernel_calls, static_cast<double>(off.memory_bytes) / 1e6, static_cast<double>(on.memory_bytes) / 1e6, off.ms,
               on.ms, off.ms / on.ms, 100.0 * off.outside_products, 100.0 * on.outside_products);
    if (name == "W1") last_line = fmt::format("W1 kernel calls per step: {} -> {}", off.kernel_calls, on.kernel_calls);
  }
  if (!last_line.empty()) fmt::print("{}\n", last_line);
}
