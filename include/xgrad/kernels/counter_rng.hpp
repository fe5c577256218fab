#pragma once
// Counter-based uniform draws: a value depends only on (seed, run, element), never on the order or
// the thread that draws it, so a fused kernel can regenerate a dropout decision instead of storing it.
#include <cstdint>

namespace xg::kernels {

/// A uniform double in [0, 1) from (seed, run, element) (a SplitMix64 finalizer over the mixed counters).
inline double uniform_at(std::uint64_t seed, std::uint64_t run, std::uint64_t element) {
  std::uint64_t z = seed ^ (run * 0x9E3779B97F4A7C15ULL) ^ (element * 0xD1B54A32D192ED03ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

}  // namespace xg::kernels
