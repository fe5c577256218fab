#pragma once
// Dropout's random mask, counter-based: element i of run r keeps its value unless
// uniform(seed, r, i) < p, so a mask depends on nothing but those three numbers.
#include <cstdint>

#include "xgrad/kernels/counter_rng.hpp"

namespace xg::kernels {

/// y[i] = 1 / (1 - p) where kept, 0 where dropped; all ones outside training. y[0] is the mask's
/// element `first` (a fused kernel computes the mask piece by piece).
template <class T>
void dropout_mask(T* y, std::int64_t n, double p, std::uint64_t seed, std::uint64_t run, bool training, std::int64_t first = 0) {
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  for (std::int64_t i = 0; i < n; ++i) {
    const bool keep = !training || uniform_at(seed, run, static_cast<std::uint64_t>(first + i)) >= p;
    y[i] = keep ? (training ? keep_scale : T(1)) : T(0);
  }
}

}  // namespace xg::kernels
