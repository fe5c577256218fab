#pragma once
// What compile()'s optimizing passes did to a program: kernel calls and memory traffic before and
// after, and each rewrite by name.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace xg {

/// Which passes compile() runs. All are on by default; each keeps results bit for bit (none
/// reassociates or changes an operation's rounding).
struct CompilePasses {
  bool fold_constants = true;  // values that depend on constants only are computed once, at compile time
  bool simplify = true;        // identities (x*1, x/1, x-0, reshape and permute chains, absorbed broadcasts)
  bool eliminate_common_subexpressions = true;
  bool sequence_major_attention = true;  // attention reads and writes (B, S, H, d): no head permutes
  bool fuse_epilogues = true;  // bias, activation and residual adds run inside the matrix product
  bool fuse_sum_of_products = true;  // sum(a * b) multiplies as it sums (the loss mask's sum(-log p * mask))
  bool fuse_elementwise = true;  // trees of elementwise ops (and dropout masks) run as one loop
  static CompilePasses none() { return {false, false, false, false, false, false, false}; }
};

struct PassReport {
  std::string name;
  std::size_t rewrites = 0;
  std::vector<std::string> changes;  // one line per rewrite, naming the nodes
};

/// What the memory-aware order did (CompileOptions::memory_aware_order): the peak of live bytes of
/// graph order and of the order compile() kept (the same when no reorder lowered it).
struct MemoryOrderReport {
  bool tried = false;
  bool reordered = false;
  std::size_t peak_graph_order = 0, peak_after = 0;
};

/// What fitting CompileOptions::memory_budget did; budget 0 when none was given.
struct MemoryBudgetReport {
  std::size_t budget = 0;
  std::size_t arena_before = 0, arena_after = 0;  // the plain schedule's arena, and the one that fits
  std::size_t peak_before = 0, peak_after = 0;    // their peaks of live bytes
  bool rescheduled = false;                       // ops were reordered to lower the peak
  std::size_t recomputed = 0;                     // forward values computed again in the backward pass
  std::size_t row_splits = 0;                     // regions run in chunks of rows (the split_rows pass)
  std::size_t extra_kernel_calls = 0;             // against the program without a budget
  std::uint64_t extra_matmul_flops = 0;
  std::size_t extra_memory_bytes = 0;             // read and written by the recomputations that are not products
};

/// Counts over the nodes the outputs need. "Memory bytes" are the bytes read and written by the
/// kernels that are not matrix products (a fused product's epilogue counts its residual, which it
/// reads from memory; the rest of its work happens on the product while it is in cache).
struct CompileReport {
  std::size_t nodes_before = 0, nodes_after = 0;
  std::size_t kernel_calls_before = 0, kernel_calls_after = 0;
  std::size_t memory_bytes_before = 0, memory_bytes_after = 0;
  std::vector<PassReport> passes;
  MemoryOrderReport memory_order;
  MemoryBudgetReport memory_budget;
  double milliseconds = 0.0;  // the whole of compile()

  /// A few lines: the counts, then each pass's rewrites (all of them when `every_change`).
  std::string summary(bool every_change = false) const;
};

}  // namespace xg
