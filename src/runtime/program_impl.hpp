#pragma once
// What compile() hands to the runtime: the nodes, the flat step list and the arena.
#include <cstddef>
#include <memory>
#include <unordered_map>
#include <vector>

#include "xgrad/op_def.hpp"
#include "xgrad/compile.hpp"
#include "xgrad/compile_report.hpp"

namespace xg {

/// Where a node's value lives after a run.
struct Placement {
  enum class Kind : std::uint8_t { none, arena, stored } kind = Kind::none;
  std::size_t offset = 0;  // arena
};

struct Step {
  int node = 0;
  ForwardFn forward = nullptr;
  std::size_t first_operand = 0, operand_count = 0;  // into Program::Impl::operands
  Buffer out;
  void* workspace = nullptr;  // OpDef::workspace's bytes in the arena, or null
  std::size_t workspace_bytes = 0;
};

/// A fed input: its arena slot.
struct InputSlot {
  int node = 0;
  Buffer buffer;
  bool needed = false;  // the outputs depend on it
};

/// A parameter or constant: the operands that read it, re-pointed at its Tensor before every run so
/// that replacing a parameter's value between runs is seen.
struct StoredLeaf {
  int node = 0;
  std::vector<std::size_t> operands;
  const Tensor* folded = nullptr;  // a constant the compiler computed; else the graph's value store
};

struct Program::Impl {
  std::vector<Node> nodes;  // the graph's nodes up to the last one the outputs use, as the passes left them
  std::vector<int> value_of;  // per node: the node that holds its value (itself unless a pass merged it)
  std::vector<int> recomputes;  // per node: the forward node a recomputation under a memory budget repeats, else -1
  std::shared_ptr<ValueStore> store;
  std::unordered_map<int, Tensor> folded;  // constants computed at compile time (fold_constants)
  CompileReport report;
  std::vector<Placement> placement;  // per node
  std::vector<bool> is_output;       // per node
  std::vector<Step> steps;
  std::vector<Buffer> operands;
  std::vector<InputSlot> inputs;
  std::vector<StoredLeaf> leaves;
  std::vector<std::byte> arena_storage;
  std::byte* arena = nullptr;  // arena_storage aligned to kArenaAlignment
  MemoryReport memory;
  RunContext context;
  std::shared_ptr<ThreadPool> pool;  // context.pool points at it
  bool flush_denormals = true;
  bool check_finite = false;
  bool profiling = false;
  std::vector<std::int64_t> step_nanoseconds;  // per step, summed over the profiled runs
  std::uint64_t profiled_runs = 0;

  Buffer arena_buffer(int node);
  /// The value of a stored node (parameter, constant, folded constant).
  const Tensor& stored_value(int node) const;
};

/// The code generator's view of a compiled Program.
struct ProgramAccess {
  using Impl = Program::Impl;
  static const Program::Impl& impl(const Program& program) { return *program.impl_; }
};

}  // namespace xg
