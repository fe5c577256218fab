#pragma once
// What the compiler tests ask of a Program: how many rewrites a pass made, and whether two values
// are the same bits (the passes' promise is bit for bit, not a tolerance).
#include <cstddef>
#include <cstring>
#include <string_view>

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

}  // namespace xg::testing
