#include "compiler/memory_plan.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "util/checked.hpp"
#include "xgrad/error.hpp"
#include "xgrad/format.hpp"
#include "xgrad/op_def.hpp"

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

  plan.peak_live_bytes = peak_live_bytes(requests);
  return plan;
}

namespace {

struct Peak {
  std::size_t bytes = 0;
  int step = 0;
};

Peak live_peak(const std::vector<BufferRequest>& requests) {
  int last = 0;
  for (const auto& r : requests) last = std::max(last, r.last_step);
  // Differences: + at the first step, - after the last; the running sum is the live bytes.
  std::vector<std::int64_t> change(static_cast<std::size_t>(last + 2), 0);
  for (const auto& r : requests) {
    change[static_cast<std::size_t>(r.first_step)] += static_cast<std::int64_t>(aligned_size(r.bytes));
    change[static_cast<std::size_t>(r.last_step) + 1] -= static_cast<std::int64_t>(aligned_size(r.bytes));
  }
  std::int64_t live = 0;
  Peak peak;
  for (std::size_t step = 0; step < change.size(); ++step) {
    live += change[step];
    if (live > static_cast<std::int64_t>(peak.bytes)) peak = {static_cast<std::size_t>(live), static_cast<int>(step)};
  }
  return peak;
}

}  // namespace

std::size_t peak_live_bytes(const std::vector<BufferRequest>& requests) { return live_peak(requests).bytes; }
int peak_live_step(const std::vector<BufferRequest>& requests) { return live_peak(requests).step; }

Liveness assign_buffers(std::span<const Node> nodes, const std::vector<bool>& live, const std::vector<bool>& is_output,
                        const std::vector<int>& schedule, bool in_place, int slots, bool copy_output_views) {
  const std::size_t count = nodes.size();
  Liveness lv{std::vector<int>(count, -1), std::vector<int>(count, -1), std::vector<int>(count, -1),
              std::vector<std::size_t>(count, 0), {}, std::vector<bool>(count, false), std::vector<int>(count, -1)};
  for (std::size_t id = 0; id < count; ++id) {
    if (live[id] && nodes[id].op == &op_input) lv.step_of[id] = 0;
  }
  for (std::size_t s = 0; s < schedule.size(); ++s) lv.step_of[static_cast<std::size_t>(schedule[s])] = static_cast<int>(s + 1);
  const int end = static_cast<int>(schedule.size()) + 1;
  for (int id : schedule) {
    for (int in : nodes[static_cast<std::size_t>(id)].inputs) {
      auto& use = lv.last_use[static_cast<std::size_t>(in)];
      use = std::max(use, lv.step_of[static_cast<std::size_t>(id)]);
    }
  }
  for (std::size_t id = 0; id < count; ++id) {
    if (is_output[id]) lv.last_use[id] = end;
    if (lv.step_of[id] >= 0) lv.last_use[id] = std::max(lv.last_use[id], lv.step_of[id]);
  }

  // Buffers: a view shares its operand's; an elementwise op may take an operand's that dies with it.
  std::size_t buffer_bytes = 0;  // aligned, summed: no plan's arena is larger (plan_memory)
  auto new_buffer = [&](std::size_t id) {
    const auto total = checked::add(buffer_bytes, aligned_size(bytes_of(nodes[id])));
    if (!total || *total > kMaxArenaBytes) {
      throw ShapeError(fmt::format("compile: the buffers up to {} ({} {}) need more than {} bytes, more than an arena can address",
                                   describe(nodes[id], static_cast<int>(id)), nodes[id].dtype, nodes[id].shape, kMaxArenaBytes));
    }
    buffer_bytes = *total;
    lv.buffer_of[id] = static_cast<int>(lv.buffers.size());
    lv.buffers.push_back({bytes_of(nodes[id]), lv.step_of[id], lv.last_use[id]});
  };
  auto join_buffer = [&](std::size_t id, int buffer) {
    lv.buffer_of[id] = buffer;
    auto& b = lv.buffers[static_cast<std::size_t>(buffer)];
    b.last_step = std::max(b.last_step, lv.last_use[id]);
  };
  // The buffers of a record's parts (InPlacePart): each operand alone at the start of a buffer of
  // exactly its part's size, dying at this step, the parts filling the record; or nothing.
  auto part_buffers = [&](std::size_t id, int step) -> std::vector<int> {
    const Node& n = nodes[id];
    const std::vector<InPlacePart> parts = n.op->in_place_parts(n, nodes);
    std::vector<int> result;
    std::int64_t next = 0;
    for (const InPlacePart& part : parts) {
      const auto in = static_cast<std::size_t>(n.inputs[static_cast<std::size_t>(part.operand)]);
      const int b = lv.buffer_of[in];
      const std::size_t bytes = bytes_of(nodes[in]);
      if (part.offset != next || b < 0 || lv.offset_in_buffer[in] != 0 || nodes[in].dtype != n.dtype ||
          lv.buffers[static_cast<std::size_t>(b)].bytes != bytes || bytes % kArenaAlignment != 0 ||
          lv.buffers[static_cast<std::size_t>(b)].last_step != step || std::find(result.begin(), result.end(), b) != result.end()) {
        return {};
      }
      result.push_back(b);
      next += nodes[in].shape.numel();
    }
    if (result.empty() || next != n.shape.numel()) return {};
    // No other operand may read those bytes: the parts are written while it is read.
    for (std::size_t k = 0; k < n.inputs.size(); ++k) {
      const bool is_part = std::any_of(parts.begin(), parts.end(), [&](const InPlacePart& p) { return p.operand == static_cast<int>(k); });
      const int b = lv.buffer_of[static_cast<std::size_t>(n.inputs[k])];
      if (!is_part && std::find(result.begin(), result.end(), b) != result.end()) return {};
    }
    return result;
  };
  // Makes the buffers one, in order (each is then a range of the first), and returns it.
  auto merge_buffers = [&](const std::vector<int>& merged) {
    auto& target = lv.buffers[static_cast<std::size_t>(merged[0])];
    for (std::size_t k = 1; k < merged.size(); ++k) {
      auto& b = lv.buffers[static_cast<std::size_t>(merged[k])];
      for (std::size_t id = 0; id < count; ++id) {
        if (lv.buffer_of[id] != merged[k]) continue;
        lv.buffer_of[id] = merged[0];
        lv.offset_in_buffer[id] += target.bytes;
      }
      target.bytes += b.bytes;
      target.first_step = std::min(target.first_step, b.first_step);
      target.last_step = std::max(target.last_step, b.last_step);
      b = {0, b.first_step, b.first_step};
    }
    return merged[0];
  };
  for (std::size_t id = 0; id < count; ++id) {
    if (lv.step_of[id] == 0) new_buffer(id);
  }
  for (int node_id : schedule) {
    const auto id = static_cast<std::size_t>(node_id);
    const Node& n = nodes[id];
    const int step = lv.step_of[id];
    int reuse = -1;
    const auto first = n.inputs.empty() ? id : static_cast<std::size_t>(n.inputs[0]);
    std::int64_t view_at = n.op->view != nullptr && lv.buffer_of[first] >= 0 ? n.op->view(n, nodes[first]) : -1;
    // An output view would keep all of its operand's buffer alive to the end (a LayerNorm gradient
    // record for its small dgamma): copied, only the output's bytes stay.
    if (view_at >= 0 && copy_output_views && is_output[id] &&
        bytes_of(n) < lv.buffers[static_cast<std::size_t>(lv.buffer_of[first])].bytes) {
      view_at = -1;
    }
    if (view_at >= 0) {
      reuse = lv.buffer_of[first];
      lv.offset_in_buffer[id] = lv.offset_in_buffer[first] + static_cast<std::size_t>(view_at) * size_of(n.dtype);
      lv.skip[id] = true;
    } else if ((n.op->elementwise || n.op->in_place_operand != nullptr) && in_place) {
      const int only = n.op->elementwise ? -1 : n.op->in_place_operand(n, nodes);
      for (std::size_t k = 0; k < n.inputs.size(); ++k) {
        if (!n.op->elementwise && static_cast<int>(k) != only) continue;
        const int in = n.inputs[k];
        const Node& operand = nodes[static_cast<std::size_t>(in)];
        const int b = lv.buffer_of[static_cast<std::size_t>(in)];
        // Only at the same address: an elementwise kernel reads and writes element i in turn.
        if (b >= 0 && lv.offset_in_buffer[static_cast<std::size_t>(in)] == 0 && operand.dtype == n.dtype &&
            operand.shape.numel() == n.shape.numel() && lv.buffers[static_cast<std::size_t>(b)].last_step == step) {
          reuse = b;
          break;
        }
      }
    }
    if (reuse < 0 && !lv.skip[id] && n.op->in_place_parts != nullptr && in_place) {
      if (const std::vector<int> parts = part_buffers(id, step); !parts.empty()) reuse = merge_buffers(parts);
    }
    if (reuse >= 0) join_buffer(id, reuse);
    else new_buffer(id);
    // Scratch for this step alone (an empty value's kernel is not called).
    if (n.op->workspace != nullptr && !lv.skip[id] && n.shape.numel() > 0) {
      if (const std::size_t bytes = n.op->workspace(n, nodes, slots); bytes > 0) {
        lv.workspace_of[id] = static_cast<int>(lv.buffers.size());
        lv.buffers.push_back({bytes, step, step});
      }
    }
  }
  return lv;
}

}  // namespace xg
