// The memory-aware order: greedy list scheduling that prefers, among the nodes whose operands are
// ready, one that frees at least as many bytes as it allocates. It is a heuristic, so its result is
// judged by the real liveness of the schedule (views and in-place reuse included) and kept only
// where that lowers the peak.
#include "compiler/memory_order.hpp"

#include <algorithm>
#include <cstdint>
#include <set>

#include <fmt/format.h>

#include "compiler/memory_plan.hpp"
#include "xgrad/op_def.hpp"

namespace xg {

namespace {

/// At each point, the earliest ready node (in the original order) that frees at least as many
/// bytes as it allocates, else the earliest ready node. Deterministic, and the original order
/// whenever no ready node frees memory.
std::vector<int> memory_order(const std::vector<Node>& nodes, const std::vector<int>& schedule, const std::vector<bool>& is_output) {
  const std::size_t count = nodes.size();
  std::vector<int> pos(count, -1);
  for (std::size_t p = 0; p < schedule.size(); ++p) pos[static_cast<std::size_t>(schedule[p])] = static_cast<int>(p);
  std::vector<int> pending(schedule.size(), 0);
  std::vector<std::vector<int>> users(count);
  std::vector<int> readers_left(count, 0);
  std::vector<std::vector<int>> operands(schedule.size());
  for (std::size_t p = 0; p < schedule.size(); ++p) {
    operands[p] = distinct_inputs(nodes[static_cast<std::size_t>(schedule[p])]);
    for (int in : operands[p]) {
      ++readers_left[static_cast<std::size_t>(in)];
      if (pos[static_cast<std::size_t>(in)] >= 0) {
        ++pending[p];
        users[static_cast<std::size_t>(in)].push_back(static_cast<int>(p));
      }
    }
  }
  // A view's bytes are its operand's, and a value a view reads stays alive through it: neither
  // counts as allocated or freed.
  std::vector<bool> viewed(count, false);
  for (int id : schedule) {
    const Node& n = nodes[static_cast<std::size_t>(id)];
    if (is_view(n, nodes)) viewed[static_cast<std::size_t>(n.inputs[0])] = true;
  }
  auto net = [&](int p) {
    const Node& n = nodes[static_cast<std::size_t>(schedule[static_cast<std::size_t>(p)])];
    std::int64_t change = is_view(n, nodes) ? 0 : static_cast<std::int64_t>(bytes_of(n));
    for (int in : operands[static_cast<std::size_t>(p)]) {
      const Node& v = nodes[static_cast<std::size_t>(in)];
      if (readers_left[static_cast<std::size_t>(in)] == 1 && !is_stored(v) && !is_output[static_cast<std::size_t>(in)] &&
          !viewed[static_cast<std::size_t>(in)] && !is_view(v, nodes)) {
        change -= static_cast<std::int64_t>(bytes_of(v));
      }
    }
    return change;
  };
  std::set<int> ready;
  for (std::size_t p = 0; p < schedule.size(); ++p) {
    if (pending[p] == 0) ready.insert(static_cast<int>(p));
  }
  std::vector<int> order;
  order.reserve(schedule.size());
  while (!ready.empty()) {
    int chosen = *ready.begin();
    for (int p : ready) {
      if (net(p) <= 0) {
        chosen = p;
        break;
      }
    }
    ready.erase(chosen);
    const int id = schedule[static_cast<std::size_t>(chosen)];
    order.push_back(id);
    for (int in : operands[static_cast<std::size_t>(chosen)]) --readers_left[static_cast<std::size_t>(in)];
    for (int u : users[static_cast<std::size_t>(id)]) {
      if (--pending[static_cast<std::size_t>(u)] == 0) ready.insert(u);
    }
  }
  return order;
}

PassReport& schedule_log(CompileReport& report) {
  for (PassReport& p : report.passes) {
    if (p.name == "schedule_for_memory") return p;
  }
  return report.passes.emplace_back(PassReport{"schedule_for_memory", 0, {}});
}

}  // namespace

Reordering reorder_for_memory(const std::vector<Node>& nodes, const std::vector<bool>& is_output, std::vector<int>& schedule,
                              const PeakOfSchedule& peak_of, CompileReport& report) {
  PassReport& log = schedule_log(report);
  Reordering r;
  r.peak_before = r.peak_after = peak_of(schedule);
  std::vector<int> reordered = memory_order(nodes, schedule, is_output);
  if (reordered == schedule) return r;
  if (const std::size_t peak = peak_of(reordered); peak < r.peak_before) {
    log.changes.push_back(fmt::format("peak live bytes {} -> {}", r.peak_before, peak));
    ++log.rewrites;
    schedule = std::move(reordered);
    r.peak_after = peak;
    r.reordered = true;
  }
  return r;
}

}  // namespace xg
