#include "compiler/memory_plan.hpp"

#include <algorithm>
#include <numeric>

namespace xg {

namespace {
bool overlap(const BufferRequest& a, const BufferRequest& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}
}  // namespace

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return requests[a].bytes > requests[b].bytes; });

  std::vector<std::size_t> placed;
  std::vector<std::pair<std::size_t, std::size_t>> busy;  // [begin, end) of conflicting buffers
  for (std::size_t r : order) {
    const std::size_t size = aligned_size(requests[r].bytes);
    busy.clear();
    for (std::size_t p : placed) {
      if (overlap(requests[p], requests[r])) busy.emplace_back(plan.offsets[p], plan.offsets[p] + aligned_size(requests[p].bytes));
    }
    std::sort(busy.begin(), busy.end());
    std::size_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (begin >= offset + size) break;
      offset = std::max(offset, end);
    }
    plan.offsets[r] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
    placed.push_back(r);
  }

  int last = 0;
  for (const auto& r : requests) last = std::max(last, r.last_step);
  std::vector<std::size_t> live(static_cast<std::size_t>(last + 2), 0);
  for (const auto& r : requests) {
    for (int s = r.first_step; s <= r.last_step; ++s) live[static_cast<std::size_t>(s)] += aligned_size(r.bytes);
  }
  plan.peak_live_bytes = live.empty() ? 0 : *std::max_element(live.begin(), live.end());
  return plan;
}

}  // namespace xg
