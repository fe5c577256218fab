#pragma once
// Fitting a Program into CompileOptions::memory_budget: a memory-aware order of the schedule, then
// forward values recomputed in the backward pass (rematerialization) until the arena fits.
#include <cstddef>
#include <vector>

#include "xgrad/compile_report.hpp"
#include "xgrad/graph.hpp"

namespace xg {

struct BudgetFit {
  std::vector<Node>& nodes;        // recomputations are appended (ids after every original node)
  std::vector<bool>& live;         // per node, extended with the recomputations
  std::vector<bool>& is_output;    // per node, extended
  std::vector<int>& value_of;      // per node, extended (a recomputation holds its own value)
  std::vector<int>& recomputes;    // per node: the node a recomputation repeats, else -1 (filled)
  const std::vector<bool>& gradient;  // per original node: built by grad(), i.e. the backward pass
  std::vector<int>& schedule;      // computed nodes in run order, rewritten
  std::size_t budget = 0;
  bool in_place = true;
  bool split_rows = true;          // CompileOptions::memory_split_rows
  int slots = 1;
  CompileReport& report;
  bool& copy_output_views;         // set when output views are copied (assign_buffers) to fit
};

/// Rewrites the schedule (and the readers of recomputed values) so that the arena fits
/// `fit.budget`, or throws ValueError naming the budget and the smallest arena reached. Recomputation
/// keeps values bit for bit: a recomputation is a copy of the node, and kernels are pure functions of
/// their operands, attributes and the run. Only when it is not enough, and `split_rows` allows,
/// regions run in row chunks (row_split.hpp), which changes the rounding of sums over rows.
void fit_memory_budget(BudgetFit fit);

}  // namespace xg
