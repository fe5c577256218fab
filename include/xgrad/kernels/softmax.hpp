#pragma once
// Softmax over the middle axis of an (outer, n, inner) array. Rows with inner == 1 are contiguous and
// use SIMD; otherwise the n elements of a row are `inner` apart.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "xgrad/kernels/parallel.hpp"
#include "xgrad/kernels/simd.hpp"

namespace xg::kernels {

/// sum of exp(x[i] - shift) over a contiguous row.
template <class T>
T sum_exp(const T* x, std::int64_t n, T shift) {
  return sum_of_terms<T>(
      n,
      [&](std::int64_t i) {
        using std::exp;  // xsimd's for batches, found by argument-dependent lookup
        const auto batch = load_batch(x + i);
        return exp(batch - decltype(batch)(shift));
      },
      [&](std::int64_t i) { return std::exp(x[i] - shift); });
}

/// y = softmax(x) (or log_softmax when Log) along n; y may equal x.
template <bool Log, class T>
void softmax_rows(const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner) {
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t j = 0; j < inner; ++j) {
      const T* xr = x + o * n * inner + j;
      T* yr = y + o * n * inner + j;
      if (inner == 1) {
        const T m = reduce_max(xr, n);
        if constexpr (Log) {
          // x is read twice and y may alias it, so the sum is taken without writing y.
          const T shift = m + std::log(sum_exp(xr, n, m));
          map_unary(xr, yr, n, [shift](auto v) { return v - decltype(v)(shift); });
        } else {
          map_unary(xr, yr, n, [m](auto v) {
            using std::exp;
            return exp(v - decltype(v)(m));
          });
          const T scale = T(1) / reduce_sum(yr, n);
          map_unary(yr, yr, n, [scale](auto v) { return v * decltype(v)(scale); });
        }
        continue;
      }
      T m = std::numeric_limits<T>::lowest();
      for (std::int64_t i = 0; i < n; ++i) m = std::max(m, xr[i * inner]);
      T total = 0;
      for (std::int64_t i = 0; i < n; ++i) total += std::exp(xr[i * inner] - m);
      const T shift = m + std::log(total);
      for (std::int64_t i = 0; i < n; ++i) {
        const T v = xr[i * inner] - shift;
        yr[i * inner] = Log ? v : std::exp(v);
      }
    }
  }
}

/// The same with the outer rows split across a pool.
template <bool Log, class T>
void softmax_rows(ThreadPool* pool, const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner) {
  parallel_rows(pool, outer, n * inner, [&](std::int64_t first, std::int64_t last) {
    softmax_rows<Log>(x + first * n * inner, y + first * n * inner, last - first, n, inner);
  });
}

}  // namespace xg::kernels
