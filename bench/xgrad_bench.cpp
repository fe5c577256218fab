// Times xgrad on the workloads of bench/README.md: forward (evaluation Program) and training step
// (forward + backward + AdamW, lr 1e-3), each the median of --steps runs after --warmup (W4, whose
// step takes seconds: at most kSlowSteps after kSlowWarmup), plus the compile time, the step's matmul
// GFLOP/s and the arena against its lower bound. One JSON object per line, which bench/compare reads.
// --workload takes a comma-separated list (W1,W4) or all.
#include <algorithm>
#include <chrono>
#include <memory>
#include <string_view>

#include <cblas.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "timing.hpp"
#include "workloads.hpp"

using namespace xg;
using bench::Clock;
using bench::median_ms;
using bench::ms_since;

namespace {

constexpr int kSlowWarmup = 1, kSlowSteps = 3;  // as torch_bench.py's SLOW_WARMUP, SLOW_STEPS

/// Whether `name` (W1) is in the comma-separated `list`, or the list is "all".
bool selected(std::string_view list, std::string_view name) {
  if (list == "all") return true;
  for (std::size_t at = 0; at <= list.size();) {
    const std::size_t end = std::min(list.find(',', at), list.size());
    if (list.substr(at, end - at) == name) return true;
    at = end + 1;
  }
  return false;
}

void run(bench::Workload& w, int warmup, int steps, bool profile, std::size_t memory_budget, int threads) {
  const auto compile_start = Clock::now();
  TrainerOptions options;
  options.compile.threads = threads;
  if (memory_budget > 0) options.compile.memory_budget = memory_budget;
  Trainer trainer(w.graph, w.objective, optim::adamw_factory(0.01, std::nullopt), options);
  const double compile_ms = ms_since(compile_start);
  Program forward = compile(w.graph, w.forward_outputs, CompileOptions{.threads = threads});
  const double forward_ms = median_ms(warmup, steps, [&] { forward.run(w.feeds); });
  const double step_ms = median_ms(warmup, steps, [&] { trainer.step(w.feeds, 1e-3); });
  const MemoryReport& mem = trainer.program().memory();
  const double flops = static_cast<double>(trainer.program().matmul_flops());
  fmt::print("{{\"workload\": \"{}\", \"forward_ms\": {:.3f}, \"step_ms\": {:.3f}, \"step_gflops\": {:.2f}, "
             "\"step_matmul_flops\": {:.0f}, \"arena_bytes\": {}, \"lower_bound_bytes\": {}, \"compile_ms\": {:.2f}, "
             "\"tokens_per_step\": {}}}\n",
             w.name, forward_ms, step_ms, flops / (step_ms * 1e6), flops, mem.arena_bytes, mem.peak_live_bytes, compile_ms,
             w.tokens_per_step);
  if (const MemoryBudgetReport& b = trainer.program().report().memory_budget; b.budget > 0) {
    // The parameter gradients are outputs, alive to the end: what is left is the activations' share.
    std::size_t gradient_bytes = 0;
    for (Var p : w.graph.params()) gradient_bytes += static_cast<std::size_t>(p.shape().numel()) * size_of(p.dtype());
    fmt::print("{{\"workload\": \"{}\", \"memory_budget\": {}, \"arena_before\": {}, \"arena_after\": {}, "
               "\"parameter_gradient_bytes\": {}, \"rescheduled\": {}, \"recomputed\": {}, \"extra_kernel_calls\": {}, "
               "\"extra_matmul_flops\": {}, \"extra_memory_bytes\": {}}}\n",
               w.name, b.budget, b.arena_before, b.arena_after, gradient_bytes, b.rescheduled, b.recomputed, b.extra_kernel_calls,
               b.extra_matmul_flops, b.extra_memory_bytes);
  }
  std::fflush(stdout);
  if (profile) {
    trainer.program().set_profiling(true);
    for (int i = 0; i < steps; ++i) trainer.step(w.feeds, 1e-3);
    fmt::print(stderr, "{} training step by op:\n{}\n", w.name, trainer.program().profile());
  }
}

/// bench/README's GEMM check: every matrix product of the workload's training step, timed inside
/// the step (profiling) against OpenBLAS sgemm called directly on the same shapes, the way the
/// matmul kernel would (one tall product when B is a shared matrix, else one per batch element).
void gemm_check(bench::Workload& w, int warmup, int steps) {
  Trainer trainer(w.graph, w.objective, optim::adamw_factory(0.01, std::nullopt));
  for (int i = 0; i < warmup; ++i) trainer.step(w.feeds, 1e-3);
  trainer.program().set_profiling(true);
  for (int i = 0; i < steps; ++i) trainer.step(w.feeds, 1e-3);
  struct Row {
    std::string shape;
    int calls = 0;
    double ours_ns = 0.0, direct_ns = 0.0;
  };
  std::vector<Row> rows;
  for (const Program::StepTime& t : trainer.program().step_times()) {
    if (t.op != "matmul") continue;
    const Node& n = w.graph.node(t.node);
    const Shape& a = w.graph.node(n.inputs[0]).shape;
    const Shape& b = w.graph.node(n.inputs[1]).shape;
    const auto& attr = std::get<MatmulAttr>(n.attrs);
    const std::int64_t m = n.shape[n.shape.rank() - 2], cols = n.shape[n.shape.rank() - 1];
    const std::int64_t k = attr.transpose_a ? a[a.rank() - 2] : a[a.rank() - 1];
    const std::int64_t batch = n.shape.numel() / (m * cols);
    const bool shared_b = b.rank() == 2 && !attr.transpose_a;
    const std::int64_t products = shared_b ? 1 : batch, rows_per = shared_b ? batch * m : m;
    std::vector<float> av(static_cast<std::size_t>(a.numel()), 0.5f), bv(static_cast<std::size_t>(b.numel()), 0.25f);
    std::vector<float> cv(static_cast<std::size_t>(n.shape.numel()));
    const std::int64_t a_step = a.numel() == products * rows_per * k ? rows_per * k : 0;
    const std::int64_t b_step = b.numel() == products * k * cols ? k * cols : 0;
    const double direct_ms = median_ms(warmup, steps, [&] {
      for (std::int64_t i = 0; i < products; ++i) {
        cblas_sgemm(CblasRowMajor, attr.transpose_a ? CblasTrans : CblasNoTrans, attr.transpose_b ? CblasTrans : CblasNoTrans,
                    static_cast<int>(rows_per), static_cast<int>(cols), static_cast<int>(k), 1.0f, av.data() + i * a_step,
                    static_cast<int>(attr.transpose_a ? rows_per : k), bv.data() + i * b_step,
                    static_cast<int>(attr.transpose_b ? k : cols), 0.0f, cv.data() + i * rows_per * cols, static_cast<int>(cols));
      }
    });
    const std::string shape = fmt::format("{}x ({}{} x {}{})", products, fmt::format("{}x{}", rows_per, k),
                                          attr.transpose_a ? "^T" : "", fmt::format("{}x{}", k, cols), attr.transpose_b ? "^T" : "");
    auto row = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.shape == shape; });
    if (row == rows.end()) row = rows.insert(rows.end(), Row{shape});
    ++row->calls;
    row->ours_ns += t.nanoseconds;
    row->direct_ns += direct_ms * 1e6;
  }
  double ours = 0.0, direct = 0.0;
  fmt::print("{} GEMMs of a training step, inside the step against sgemm called directly:\n", w.name);
  fmt::print("  {:<34} {:>5} {:>10} {:>10} {:>7}\n", "products (m x k, k x n)", "calls", "ours us", "direct us", "ratio");
  for (const Row& r : rows) {
    fmt::print("  {:<34} {:>5} {:>10.1f} {:>10.1f} {:>7.3f}\n", r.shape, r.calls, r.ours_ns / 1e3, r.direct_ns / 1e3,
               r.ours_ns / r.direct_ns);
    ours += r.ours_ns;
    direct += r.direct_ns;
  }
  fmt::print("  {:<34} {:>5} {:>10.1f} {:>10.1f} {:>7.3f}\n", "total", "", ours / 1e3, direct / 1e3, ours / direct);
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = "all";
  int warmup = 5, steps = 20;
  std::int64_t scaling_seq = 0, scaling_batch = 0;
  std::size_t memory_budget = 0;
  int threads = 0;
  bool profile = false, check_gemm = false;
  CLI::App app{"Times training steps of the benchmark workloads (bench/compare runs it beside PyTorch).", "xgrad_bench"};
  app.option_defaults()->always_capture_default();
  app.add_option("--workload", which, "W1,W2,W3,W4 (any of them, comma-separated) or all");
  app.add_option("--steps", steps, "timed steps per workload")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--scaling-seq", scaling_seq, "only W2's layer at this sequence length (bench/scaling)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch", scaling_batch, "batch of --scaling-seq; 0: 2048 tokens per batch")->check(CLI::NonNegativeNumber);
  app.add_flag("--profile", profile, "time per op as well");
  app.add_option("--threads", threads, "threads of the Programs (0: the process default, one per core)")->check(CLI::NonNegativeNumber);
  app.add_option("--memory-budget", memory_budget, "arena bytes the training Program must fit in (0: no budget)");
  app.add_flag("--gemm-check", check_gemm, "time every matrix product of a step against sgemm called directly");
  CLI11_PARSE(app, argc, argv);
  if (scaling_seq > 0) {  // bench/scaling: W2's layer at sequence length S, 2048 tokens per batch unless --batch
    auto w = std::make_unique<bench::Workload>();
    bench::build_encoder(*w, scaling_batch > 0 ? scaling_batch : std::max<std::int64_t>(1, 2048 / scaling_seq), scaling_seq);
    run(*w, warmup, steps, profile, memory_budget, threads);
    return 0;
  }
  using Build = void (*)(bench::Workload&);
  const std::vector<std::pair<std::string_view, Build>> all{
      {"W1", bench::build_gpt_tiny},
      {"W2", [](bench::Workload& w) { bench::build_encoder(w); }},
      {"W3", bench::build_seq2seq_small},
      {"W4", [](bench::Workload& w) { bench::build_gpt2(w, 64); }},
      {"W4", [](bench::Workload& w) { bench::build_gpt2(w, 256); }}};
  for (const auto& [name, build] : all) {
    if (!selected(which, name)) continue;
    auto w = std::make_unique<bench::Workload>();  // Vars point at its graph: it stays where it is
    build(*w);
    const bool slow = name == "W4";
    const int w_warmup = slow ? std::min(warmup, kSlowWarmup) : warmup, w_steps = slow ? std::min(steps, kSlowSteps) : steps;
    if (check_gemm) gemm_check(*w, w_warmup, w_steps);
    else run(*w, w_warmup, w_steps, profile, memory_budget, threads);
  }
}
