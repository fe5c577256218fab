#pragma once
// Checked size arithmetic. Every element count and byte count that xgrad derives from shapes goes
// through these, so that an overflow becomes an error naming its cause instead of a wrapped-around
// number (a (2^40, 2^40) input used to count 0 elements and get a 64-byte arena).
#include <concepts>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <fmt/format.h>

#include "xgrad/error.hpp"

namespace xg::checked {

/// a + b, or nullopt when the sum does not fit in T.
template <std::integral T>
constexpr std::optional<T> add(T a, T b) {
  T sum{};
  if (__builtin_add_overflow(a, b, &sum)) return std::nullopt;
  return sum;
}

/// a * b, or nullopt when the product does not fit in T.
template <std::integral T>
constexpr std::optional<T> mul(T a, T b) {
  T product{};
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

/// The product of `scale` and every extent of `dims` (0 when an extent is 0), or nullopt when an
/// extent is negative or when `scale` times the non-zero extents exceeds int64. Zero extents are
/// skipped in that test, as NumPy does: an empty shape whose other extents overflow is refused too,
/// so that every stride of an accepted shape fits as well. With `scale` the element size this is a
/// byte count; with 1, an element count.
template <class Dims>
constexpr std::optional<std::int64_t> product(const Dims& dims, std::int64_t scale = 1) {
  std::int64_t nonzero = scale;
  bool empty = false;
  for (const auto d : dims) {
    if constexpr (std::is_signed_v<decltype(d)>) {
      if (d < 0) return std::nullopt;
    }
    if (static_cast<std::uint64_t>(d) > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
    if (d == 0) {
      empty = true;
      continue;
    }
    const auto next = mul(nonzero, static_cast<std::int64_t>(d));
    if (!next) return std::nullopt;
    nonzero = *next;
  }
  return empty ? 0 : nonzero;
}

/// product(dims, element_size), or a ShapeError that starts with `what` and names the shape.
template <class Dims>
std::int64_t size(const Dims& dims, std::int64_t element_size, std::string_view what) {
  if (const auto n = product(dims, element_size)) return *n;
  const std::string shape = std::size(dims) == 1 ? fmt::format("({},)", *std::begin(dims)) : fmt::format("({})", fmt::join(dims, ", "));
  for (const auto d : dims) {
    if constexpr (std::is_signed_v<decltype(d)>) {
      if (d < 0) throw ShapeError(fmt::format("{}: negative extent in shape {}", what, shape));
    }
  }
  throw ShapeError(fmt::format("{}: shape {} is too large: its {} does not fit in 64 bits", what, shape,
                               element_size == 1 ? "element count" : fmt::format("size in bytes ({}-byte elements)", element_size)));
}

}  // namespace xg::checked
