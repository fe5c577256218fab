#pragma once
// Dropout's random mask, counter-based: element i of run r keeps its value unless
// uniform(seed, r, i) < p, so a mask depends on nothing but those three numbers.
#include <cstdint>

namespace xg::kernels {

/// A uniform double in [0, 1) from (seed, run, element), by a splitmix64-style finaliser.
inline double uniform_at(std::uint64_t seed, std::uint64_t run, std::uint64_t element) {
  std::uint64_t z = seed ^ (run * 0x9E3779B97F4A7C15ULL) ^ (element * 0xD1B54A32D192ED03ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

/// y[i] = 1 / (1 - p) where kept, 0 where dropped; all ones outside training.
template <class T>
void dropout_mask(T* y, std::int64_t n, double p, std::uint64_t seed, std::uint64_t run, bool training) {
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  for (std::int64_t i = 0; i < n; ++i) {
    const bool keep = !training || uniform_at(seed, run, static_cast<std::uint64_t>(i)) >= p;
    y[i] = keep ? (training ? keep_scale : T(1)) : T(0);
  }
}

}  // namespace xg::kernels
