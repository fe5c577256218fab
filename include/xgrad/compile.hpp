#pragma once
// compile(): graph -> Program (dead-node elimination, schedule, liveness, static memory plan).
// Program::run(): a flat list of kernel calls over one preallocated arena.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "xgrad/compile_report.hpp"
#include "xgrad/graph.hpp"
#include "xgrad/tensor.hpp"
#include "xgrad/thread_pool.hpp"

namespace xg {

struct CompileOptions {
  /// Let elementwise ops write over an operand that dies at that op.
  bool in_place = true;
  /// The pool a run splits its kernels across (the caller's thread included). Null: the process's
  /// default pool (ThreadPool::process_default()) when `threads` is 0 or its size, else a pool of
  /// `threads` threads that the Program owns. Results do not depend on the pool's size: work is cut
  /// into pieces fixed by the shapes alone, and each piece is computed the same way on any thread.
  std::shared_ptr<ThreadPool> pool = nullptr;
  int threads = 0;
  /// During a run, flush subnormal results to zero and read subnormal operands as zero (FTZ and DAZ
  /// on x86) on every thread that runs kernels; the caller's own setting is restored afterwards.
  /// Subnormal floats are far below any precision a model trains at, and on x86 each one costs
  /// about a hundred cycles. Off: IEEE gradual underflow, at that cost.
  bool flush_denormals = true;
  /// The optimizing passes (all on by default; CompilePasses::none() for none). Each keeps results
  /// bit for bit; Program::report() says what they did.
  CompilePasses passes{};
  /// Run independent ops in a memory-aware order (a value's last readers before the next large
  /// value is made) when that lowers the peak of live bytes, the arena's lower bound; otherwise, and
  /// when off, in graph order. Values keep every bit; report().memory_order gives both peaks.
  bool memory_aware_order = true;
  /// Arena bytes to fit in. Unset: no limit. Set: if the plain arena is larger, compile() copies
  /// output views, reorders independent ops to lower the peak of live bytes (even when
  /// memory_aware_order is off), then recomputes forward values in the backward pass (cheapest per
  /// byte saved first) until the arena fits, then (memory_split_rows) runs regions by rows, or
  /// throws ValueError naming the budget and the smallest arena it reached. Recomputation keeps
  /// every bit; report().memory_budget says what it cost.
  std::optional<std::size_t> memory_budget = std::nullopt;
  /// When recomputation alone cannot fit memory_budget: run the regions around the largest values
  /// (a feed-forward block's hidden activation and its gradient) in chunks of rows, so that one
  /// chunk of such a value exists at a time. Sums over rows (weight and bias gradients) are then
  /// added chunk by chunk, so results agree with the unsplit program to rounding, not bit for bit.
  /// Off: such a budget throws ValueError instead.
  bool memory_split_rows = true;
};

/// One input value for Program::run: a view, not a copy, of the caller's array.
struct Feed {
  Var var;
  TensorRef value;
};

/// Where the bytes went: the arena against the sum of all tensor bytes, and the peak of live bytes
/// over the schedule (the lower bound of any plan for this schedule).
struct MemoryReport {
  std::size_t arena_bytes = 0;
  std::size_t tensor_bytes = 0;
  std::size_t peak_live_bytes = 0;
  std::size_t buffers = 0;
  std::size_t values = 0;
};

class Program {
 public:
  Program(Program&&) noexcept;
  Program& operator=(Program&&) noexcept;
  ~Program();

  /// Runs the schedule. Every input the outputs depend on needs a feed of its exact shape and dtype.
  /// No heap allocation once the Program exists.
  void run(std::span<const Feed> feeds);
  void run(std::initializer_list<Feed> feeds) { run(std::span<const Feed>(feeds.begin(), feeds.size())); }

  /// The value of an output (or of any input or parameter of the graph) after the last run.
  Tensor get(Var v) const;
  template <class T>
  xt::xarray<T> get(Var v) const {
    return get(v).template as<T>();
  }
  /// A view of the same value without a copy; valid until the next run.
  TensorRef view(Var v) const;

  /// Dropout is active in training mode only (the default is evaluation).
  void set_training(bool training);
  bool training() const;
  /// Finite-check mode: after every kernel, scan its output and raise NonFiniteError naming the
  /// first node that produced a NaN or an infinity (and the feed or parameter, if one already holds
  /// one). Off by default: it reads every value once more.
  void set_check_finite(bool check);
  bool check_finite() const;
  /// Profiling mode: every kernel call is timed; profile() then reports, per op, the calls, the total
  /// time and its share since profiling was switched on, slowest first. Off by default.
  void set_profiling(bool profile);
  std::string profile() const;
  /// The same measurements per kernel call, in schedule order: the node it computes and its mean
  /// time per run.
  struct StepTime {
    int node = 0;
    std::string_view op;
    double nanoseconds = 0.0;
  };
  std::vector<StepTime> step_times() const;
  /// Runs so far. Dropout masks depend on the graph's seed and this counter only, so restoring it
  /// (with the parameters and optimizer state) resumes training exactly.
  std::uint64_t run_index() const;
  void set_run_index(std::uint64_t runs);

  const MemoryReport& memory() const;
  /// Threads a run uses: the size of its pool.
  int threads() const;
  /// CompileOptions::flush_denormals.
  bool flush_denormals() const;
  /// Number of kernel calls per run.
  std::size_t steps() const;
  /// Floating-point operations of the matrix products in one run (2 m n k per product), including
  /// those inside fused ops (attention counts the products of its unfused composition).
  std::uint64_t matmul_flops() const;
  /// What the optimizing passes did: counts before and after, and every rewrite.
  const CompileReport& report() const;
  /// The passes' summary, then one line per scheduled node: id, op, dtype, shape, inputs,
  /// attributes, arena offset.
  std::string dump() const;

 private:
  friend Program compile(const Graph&, const std::vector<Var>&, const CompileOptions&);
  friend struct ProgramAccess;  // the code generator reads the schedule and the plan
  struct Impl;
  explicit Program(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Compiles the part of `graph` that `outputs` depend on. The Program keeps its own copy of the
/// nodes and shares parameter values with the graph.
Program compile(const Graph& graph, const std::vector<Var>& outputs, const CompileOptions& options = {});

}  // namespace xg
