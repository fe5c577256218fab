#pragma once
// A memory-aware order of the schedule: the same ops under the same dependencies, run so that a
// value's last readers come before the next large value is made. compile() tries it on every
// program (CompileOptions::memory_aware_order), and fitting a memory budget tries it again once
// output views are copied.
#include <cstddef>
#include <functional>
#include <vector>

#include "xgrad/compile_report.hpp"
#include "xgrad/graph.hpp"

namespace xg {

/// The peak of live bytes of a schedule, as its caller plans it (assign_buffers' options).
using PeakOfSchedule = std::function<std::size_t(const std::vector<int>&)>;

struct Reordering {
  std::size_t peak_before = 0, peak_after = 0;
  bool reordered = false;
};

/// Replaces `schedule` (computed nodes in run order) with its memory-aware order when `peak_of`
/// finds that one's peak strictly lower, and logs it in the "schedule_for_memory" pass of `report`.
/// A tie keeps the schedule, so a program the order does not help is left exactly as it was.
/// Values are unchanged bit for bit: kernels are pure, and which values each sum adds is fixed by
/// the graph (autodiff accumulates gradients in add nodes), not by the order nodes run in.
Reordering reorder_for_memory(const std::vector<Node>& nodes, const std::vector<bool>& is_output, std::vector<int>& schedule,
                              const PeakOfSchedule& peak_of, CompileReport& report);

}  // namespace xg
