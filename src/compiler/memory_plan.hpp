#pragma once
// Static memory planning: buffers with known sizes and live intervals get fixed offsets in one arena.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace xg {

inline constexpr std::size_t kArenaAlignment = 64;
/// The most bytes the buffers of one plan may take together (aligned), leaving room for the arena's
/// own alignment: every offset and size then fits in int64 and std::ptrdiff_t.
inline constexpr std::size_t kMaxArenaBytes =
    (static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()) / kArenaAlignment - 1) * kArenaAlignment;

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

}  // namespace xg
