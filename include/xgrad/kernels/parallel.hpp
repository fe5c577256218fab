#pragma once
// Splitting a kernel's independent work across a ThreadPool so that the result does not depend on
// the split: rows are never divided, and a long contiguous range is cut only at multiples of every
// SIMD width, so each element takes the same path (SIMD body or scalar tail) as in one serial pass.
#include <algorithm>
#include <cstdint>

#include "xgrad/kernels/broadcast.hpp"
#include "xgrad/kernels/simd.hpp"
#include "xgrad/thread_pool.hpp"

namespace xg::kernels {

/// Below this many elements a kernel runs on the calling thread: a hand-over costs about a
/// microsecond.
inline constexpr std::int64_t kParallelElements = 1 << 14;
/// Cut points of a split contiguous range: a multiple of every SIMD width.
inline constexpr std::int64_t kChunkAlignment = 64;

inline bool worth_splitting(const ThreadPool* pool, std::int64_t elements) {
  return pool != nullptr && pool->size() > 1 && elements >= kParallelElements;
}

/// f(begin, end) over [0, n), cut at multiples of kChunkAlignment.
template <class F>
void parallel_range(ThreadPool* pool, std::int64_t n, F&& f) {
  if (!worth_splitting(pool, n)) {
    f(std::int64_t{0}, n);
    return;
  }
  const std::int64_t blocks = (n + kChunkAlignment - 1) / kChunkAlignment;
  pool->parallel_for(blocks, [&](std::int64_t first, std::int64_t last) {
    f(first * kChunkAlignment, std::min(n, last * kChunkAlignment));
  });
}

/// f(first, last) over rows [0, rows) of `row_length` elements each, whole rows per thread.
template <class F>
void parallel_rows(ThreadPool* pool, std::int64_t rows, std::int64_t row_length, F&& f) {
  if (rows < 2 || !worth_splitting(pool, rows * row_length)) {
    f(std::int64_t{0}, rows);
    return;
  }
  pool->parallel_for(rows, f);
}

/// map_unary split across the pool.
template <class T, class F>
void map_unary(ThreadPool* pool, const T* x, T* y, std::int64_t n, F f) {
  parallel_range(pool, n, [&](std::int64_t begin, std::int64_t end) { map_unary(x + begin, y + begin, end - begin, f); });
}

/// map_binary over one row, split across the pool.
template <class T, class F>
void map_binary(ThreadPool* pool, const T* a, std::int64_t sa, const T* b, std::int64_t sb, T* y, std::int64_t n, F f) {
  parallel_range(pool, n, [&](std::int64_t begin, std::int64_t end) {
    map_binary(a + begin * sa, sa, b + begin * sb, sb, y + begin, end - begin, f);
  });
}

/// map_binary_rows with the rows split across the pool.
template <class T, class F>
void map_binary_rows(ThreadPool* pool, const T* a, std::int64_t a_outer, std::int64_t sa, const T* b, std::int64_t b_outer,
                     std::int64_t sb, T* y, std::int64_t rows, std::int64_t n, F f) {
  parallel_rows(pool, rows, n, [&](std::int64_t first, std::int64_t last) {
    map_binary_rows(a + first * a_outer, a_outer, sa, b + first * b_outer, b_outer, sb, y + first * n, last - first, n, f);
  });
}

/// RowWalk::visit over every row, split across the pool: by rows when there are several, else
/// within the one row (the row function must then accept a part of a row: offsets advanced by
/// begin * inner stride).
template <std::size_t N, class Row>
void parallel_for_each_row(ThreadPool* pool, Dims out, const std::array<Dims, N>& operands, Row&& row) {
  const RowWalk<N> walk(out, operands);
  const std::int64_t rows = walk.rows(), n = walk.row_length();
  if (rows == 1) {
    walk.visit(0, 1, [&](const auto& at, const auto& step, std::int64_t length) {
      parallel_range(pool, length, [&](std::int64_t begin, std::int64_t end) {
        auto start = at;
        for (std::size_t k = 0; k < start.size(); ++k) start[k] += begin * step[k];
        row(start, step, end - begin);
      });
    });
    return;
  }
  parallel_rows(pool, rows, n, [&](std::int64_t first, std::int64_t last) { walk.visit(first, last, row); });
}

}  // namespace xg::kernels
