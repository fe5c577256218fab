#pragma once
// Static memory planning: buffers with known sizes and live intervals get fixed offsets in one arena.
#include <cstddef>
#include <vector>

namespace xg {

inline constexpr std::size_t kArenaAlignment = 64;

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
/// alive at the same time occupies.
MemoryPlan plan_memory(const std::vector<BufferRequest>& requests);

}  // namespace xg
