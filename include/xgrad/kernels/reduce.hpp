#pragma once
// One row of a sum or max reduction, as the reduce kernel walks them: a row along a reduced axis
// collapses into one element, a row along a kept axis updates a row of the output elementwise.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "xgrad/kernels/simd.hpp"

namespace xg::kernels {

template <bool IsMax, class T>
constexpr T reduce_identity() {
  return IsMax ? std::numeric_limits<T>::lowest() : T(0);
}

/// Folds x[0..n) into target: into *target when target_step is 0, into target[0..n) when it is 1.
template <bool IsMax, class T>
void reduce_row(const T* row, T* target, std::int64_t target_step, std::int64_t n) {
  if (target_step == 0) {
    if constexpr (IsMax) {
      const T m = reduce_max(row, n);
      *target = m > *target ? m : *target;
    } else {
      *target += reduce_sum(row, n);
    }
  } else if constexpr (IsMax) {
    for (std::int64_t i = 0; i < n; ++i) target[i] = row[i] > target[i] ? row[i] : target[i];
  } else {
    map_binary(target, 1, row, 1, target, n, [](auto a, auto b) { return a + b; });
  }
}

/// The sum of products a[i] * b[i] folded into target as reduce_row folds a row of them, each
/// operand negated first where asked: the bits of neg, mul and sum run one after another.
template <class T>
void sum_product_row(const T* a, bool negate_a, const T* b, bool negate_b, T* target, std::int64_t target_step, std::int64_t n) {
  const auto product = [&](auto x, auto y) { return (negate_a ? -x : x) * (negate_b ? -y : y); };
  if (target_step == 0) {
    *target += reduce_binary(a, b, n, product);
  } else {
    for (std::int64_t i = 0; i < n; ++i) target[i] = target[i] + product(a[i], b[i]);
  }
}

/// sum_product_row over rows at constant strides, as reduce_rows walks them (generated code).
template <class T>
void sum_product_rows(const T* a, bool negate_a, const T* b, bool negate_b, std::int64_t x_outer, T* y, std::int64_t y_outer,
                      std::int64_t y_step, std::int64_t rows, std::int64_t n, std::int64_t count) {
  std::fill(y, y + count, T(0));
  for (std::int64_t r = 0; r < rows; ++r) sum_product_row(a + r * x_outer, negate_a, b + r * x_outer, negate_b, y + r * y_outer, y_step, n);
}

/// A whole reduction whose rows sit at constant strides (what generated code calls): y[0..count)
/// starts at the identity, then row r of x (at r * x_outer) folds into y + r * y_outer.
template <bool IsMax, class T>
void reduce_rows(const T* x, std::int64_t x_outer, T* y, std::int64_t y_outer, std::int64_t y_step, std::int64_t rows,
                 std::int64_t n, std::int64_t count) {
  std::fill(y, y + count, reduce_identity<IsMax, T>());
  for (std::int64_t r = 0; r < rows; ++r) reduce_row<IsMax>(x + r * x_outer, y + r * y_outer, y_step, n);
}

}  // namespace xg::kernels
