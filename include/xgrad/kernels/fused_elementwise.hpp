#pragma once
// The loop of a fused elementwise program (ops/fused_elementwise.cpp interprets one, generated code
// spells one out): the output is walked in rows along which every operand is contiguous or one
// broadcast value, each row in tiles, and every instruction runs over a whole tile with the very
// kernel its op runs alone (map_unary, map_binary). Tiles start at multiples of kChunkAlignment
// from the row's start and the last one ends with the row, so each element falls into the same
// SIMD batch, or the same scalar tail, as in the op's own kernel.
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

#include "xgrad/kernels/broadcast.hpp"
#include "xgrad/kernels/parallel.hpp"

namespace xg::kernels {

/// Elements of a row each instruction computes before the next one runs (a multiple of
/// kChunkAlignment, so that tiles start where the op's own batches do).
inline constexpr std::int64_t kFusedTile = 128;
static_assert(kFusedTile % kChunkAlignment == 0);
/// Most instructions and operands of one fused program: its temporaries live on the stack.
inline constexpr int kMaxFusedInstructions = 32;
inline constexpr int kMaxFusedOperands = 16;

/// tile(row, begin, n) over every row of `rows` rows of `row_length` elements, in tiles of at
/// most kFusedTile elements; split across the pool by whole rows, or within a single row at
/// multiples of kChunkAlignment, as the ops' own kernels split.
template <class Tile>
void for_each_tile(ThreadPool* pool, std::int64_t rows, std::int64_t row_length, Tile&& tile) {
  const auto piece = [&](std::int64_t row, std::int64_t begin, std::int64_t end) {
    for (std::int64_t j = begin; j < end; j += kFusedTile) tile(row, j, std::min(kFusedTile, end - j));
  };
  if (rows == 1) {
    parallel_range(pool, row_length, [&](std::int64_t begin, std::int64_t end) { piece(0, begin, end); });
    return;
  }
  parallel_rows(pool, rows, row_length, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t row = first; row < last; ++row) piece(row, 0, row_length);
  });
}

/// An operand broadcast to the output, seen row by row: where row r starts, and its stride along
/// a row (1: contiguous, 0: one value for the whole row).
class BroadcastRows {
 public:
  /// Null when the operand is neither contiguous nor constant along rows of `row_length`.
  static std::optional<BroadcastRows> make(Dims out, Dims operand, std::int64_t row_length) {
    if (row_length <= 0 || operand.size() > out.size() || out.size() > static_cast<std::size_t>(kMaxRank)) return std::nullopt;
    std::array<std::int64_t, kMaxRank> strides{};
    broadcast_strides(operand, out, strides.data());
    BroadcastRows rows;
    // The row's axes: the trailing ones whose extents multiply to row_length.
    int first_row_axis = static_cast<int>(out.size());
    std::int64_t extent = 1;
    while (first_row_axis > 0 && extent < row_length) extent *= out[static_cast<std::size_t>(--first_row_axis)];
    if (extent != row_length) return std::nullopt;
    bool constant = true, contiguous = true;
    std::int64_t expected = 1;
    for (int axis = static_cast<int>(out.size()) - 1; axis >= first_row_axis; --axis) {
      const std::int64_t d = out[static_cast<std::size_t>(axis)];
      if (d != 1) {
        constant = constant && strides[static_cast<std::size_t>(axis)] == 0;
        contiguous = contiguous && strides[static_cast<std::size_t>(axis)] == expected;
      }
      expected *= d;
    }
    if (!constant && !contiguous) return std::nullopt;
    rows.step_ = constant ? 0 : 1;
    rows.leading_ = first_row_axis;
    std::int64_t below = 1;
    for (int axis = first_row_axis - 1; axis >= 0; --axis) {
      rows.dims_[static_cast<std::size_t>(axis)] = out[static_cast<std::size_t>(axis)];
      rows.strides_[static_cast<std::size_t>(axis)] = strides[static_cast<std::size_t>(axis)];
      rows.below_[static_cast<std::size_t>(axis)] = below;
      below *= out[static_cast<std::size_t>(axis)];
    }
    return rows;
  }

  std::int64_t step() const { return step_; }
  /// Element offset of row `row`'s start.
  std::int64_t at(std::int64_t row) const {
    std::int64_t offset = 0;
    for (int axis = 0; axis < leading_; ++axis) {
      const auto a = static_cast<std::size_t>(axis);
      offset += (row / below_[a]) % dims_[a] * strides_[a];
    }
    return offset;
  }
  /// The output's axes before the row, with the operand's strides along them and the rows one step
  /// of each spans (what generated code spells as a constant expression).
  int leading_axes() const { return leading_; }
  std::int64_t extent(int axis) const { return dims_[static_cast<std::size_t>(axis)]; }
  std::int64_t stride(int axis) const { return strides_[static_cast<std::size_t>(axis)]; }
  std::int64_t rows_below(int axis) const { return below_[static_cast<std::size_t>(axis)]; }

 private:
  BroadcastRows() = default;
  int leading_ = 0;
  std::int64_t step_ = 1;
  std::array<std::int64_t, kMaxRank> dims_{}, strides_{}, below_{};
};

/// where's own loop over part of a row: y[i] = c[i * sc] != 0 ? a[i * sa] : b[i * sb].
template <class T>
void select_where(const T* c, std::int64_t sc, const T* a, std::int64_t sa, const T* b, std::int64_t sb, T* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = c[i * sc] != T(0) ? a[i * sa] : b[i * sb];
}

}  // namespace xg::kernels
