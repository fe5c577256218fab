#pragma once
// Static memory planning: buffers with known sizes and live intervals get fixed offsets in one arena.
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/op_def.hpp"

namespace xg {

inline constexpr std::size_t kArenaAlignment = 64;
/// The most bytes the buffers of one plan may take together (aligned), leaving room for the arena's
/// own alignment: every offset and size then fits in int64 and std::ptrdiff_t.
inline constexpr std::size_t kMaxArenaBytes =
    (static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()) / kArenaAlignment - 1) * kArenaAlignment;

/// The bytes of a node's value (its extents were checked to fit when the node was made).
inline std::size_t bytes_of(const Node& n) { return static_cast<std::size_t>(n.shape.numel()) * size_of(n.dtype); }

/// Parameters and constants: values the graph (or a pass) stores, which no step computes or plans.
inline bool is_stored(const Node& n) { return n.op == &op_param || n.op == &op_constant; }

/// Each distinct operand once: a node reading a value twice frees or uses it once.
inline std::vector<int> distinct_inputs(const Node& n) {
  std::vector<int> in = n.inputs;
  std::sort(in.begin(), in.end());
  in.erase(std::unique(in.begin(), in.end()), in.end());
  return in;
}

/// A node whose value lives inside its first operand's buffer (a reshape, a leading-axes slice):
/// it has nothing to compute and no bytes of its own.
inline bool is_view(const Node& n, std::span<const Node> nodes) {
  return n.op->view != nullptr && !n.inputs.empty() && n.op->view(n, nodes[static_cast<std::size_t>(n.inputs[0])]) >= 0;
}

/// `bytes` rounded up to a multiple of kArenaAlignment.
constexpr std::size_t aligned_size(std::size_t bytes) { return (bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }

struct BufferRequest {
  std::size_t bytes = 0;
  int first_step = 0;  // written here
  int last_step = 0;   // last read here (inclusive)
};

struct MemoryPlan {
  std::vector<std::size_t> offsets;  // one per request
  std::size_t arena_bytes = 0;
  std::size_t peak_live_bytes = 0;  // max over steps of the bytes live at once: no plan does better
};

/// Greedy by size: the largest buffers are placed first, each at the lowest offset that no buffer
/// alive at the same time occupies. No offset exceeds the sum of the aligned sizes placed before,
/// so the caller keeps that sum within kMaxArenaBytes (compile() does, naming the node that would
/// pass it) and nothing here overflows.
MemoryPlan plan_memory(const std::vector<BufferRequest>& requests);

/// The peak of live (aligned) bytes over the steps: plan_memory's lower bound, without placing.
std::size_t peak_live_bytes(const std::vector<BufferRequest>& requests);
/// The first step at which that peak is reached.
int peak_live_step(const std::vector<BufferRequest>& requests);

/// Values computed or fed, in the order they are produced, with the buffer each one lives in.
struct Liveness {
  std::vector<int> step_of;        // per node: 0 for inputs, 1.. for computed nodes, -1 elsewhere
  std::vector<int> last_use;       // per node
  std::vector<int> buffer_of;      // per node
  std::vector<std::size_t> offset_in_buffer;  // per node, bytes: a view's place in its operand's buffer
  std::vector<BufferRequest> buffers;
  std::vector<bool> skip;          // per node: a view, nothing to run
  std::vector<int> workspace_of;   // per node: the buffer of its kernel's scratch, or -1
};

/// Liveness and buffers of `schedule` (computed nodes in run order; the needed inputs are the
/// `live` ones): a view shares its operand's buffer, an elementwise op may take an operand's that
/// dies with it (`in_place`), a kernel's workspace (for `slots` threads) lives at its step only.
/// `copy_output_views`: an output that would view part of a larger buffer is copied instead.
Liveness assign_buffers(std::span<const Node> nodes, const std::vector<bool>& live, const std::vector<bool>& is_output,
                        const std::vector<int>& schedule, bool in_place, int slots, bool copy_output_views = false);

}  // namespace xg
