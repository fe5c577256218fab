#pragma once
// What the compiler tests ask of a Program: how many rewrites a pass made, and whether two values
// are the same bits (the passes' promise is bit for bit, not a tolerance).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "xgrad/xgrad.hpp"

namespace xg::testing {

inline std::size_t rewrites(const Program& p, std::string_view pass) {
  for (const PassReport& r : p.report().passes) {
    if (r.name == pass) return r.rewrites;
  }
  return 0;
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * size_of(a.dtype())) == 0;
}

/// The index of the first value of two runs' lists that differs in a bit (the shorter list's
/// length when they differ in length), or -1 when every value is the same bits.
template <class Value>
std::ptrdiff_t first_different(const std::vector<Value>& a, const std::vector<Value>& b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t k = 0; k < n; ++k) {
    if constexpr (std::is_same_v<Value, Tensor>) {
      if (!same_bits(a[k], b[k])) return static_cast<std::ptrdiff_t>(k);
    } else if (a[k] != b[k]) {
      return static_cast<std::ptrdiff_t>(k);
    }
  }
  return a.size() == b.size() ? -1 : static_cast<std::ptrdiff_t>(n);
}

}  // namespace xg::testing
