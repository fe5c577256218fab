#pragma once
// Iteration over an output of some shape whose operands are broadcast to it (stride 0 on the
// broadcast axes). Adjacent axes that are contiguous in every operand are merged first, so a
// same-shape operation is one long row and a bias add is rows of length D.
#include <array>
#include <cstdint>
#include <span>

namespace xg::kernels {

inline constexpr int kMaxRank = 8;

using Dims = std::span<const std::int64_t>;

/// Strides of `in` seen as broadcast to `out` (aligned at the last axis), in elements.
inline void broadcast_strides(Dims in, Dims out, std::int64_t* strides) {
  const int offset = static_cast<int>(out.size() - in.size());
  std::int64_t stride = 1;
  for (int axis = static_cast<int>(out.size()) - 1; axis >= 0; --axis) {
    const int in_axis = axis - offset;
    if (in_axis < 0) {
      strides[axis] = 0;
      continue;
    }
    const std::int64_t extent = in[static_cast<std::size_t>(in_axis)];
    strides[axis] = (extent == 1 && out[static_cast<std::size_t>(axis)] != 1) ? 0 : stride;
    stride *= extent;
  }
}

/// The innermost rows of `out` with its operands broadcast to it: adjacent axes that every operand
/// steps through as one are merged, so a same-shape operation is one long row.
template <std::size_t N>
class RowWalk {
 public:
  static constexpr std::size_t K = N + 1;  // operand 0 is the output, contiguous

  RowWalk(Dims out, const std::array<Dims, N>& operands) {
    for (std::int64_t extent : out) {
      if (extent == 0) empty_ = true;
    }
    std::array<std::array<std::int64_t, kMaxRank>, K> full{};
    broadcast_strides(out, out, full[0].data());
    for (std::size_t k = 0; k < N; ++k) broadcast_strides(operands[k], out, full[k + 1].data());
    // Merge axis into the one after it whenever every operand steps through both as one.
    for (std::size_t axis = 0; axis < out.size(); ++axis) {
      const std::int64_t extent = out[axis];
      if (extent == 1) continue;
      bool merge = rank_ > 0;
      for (std::size_t k = 0; k < K && merge; ++k) merge = strides_[k][rank_ - 1] == full[k][axis] * extent;
      if (merge) {
        dims_[rank_ - 1] *= extent;
        for (std::size_t k = 0; k < K; ++k) strides_[k][rank_ - 1] = full[k][axis];
      } else {
        dims_[rank_] = extent;
        for (std::size_t k = 0; k < K; ++k) strides_[k][rank_] = full[k][axis];
        ++rank_;
      }
    }
  }

  /// Number of rows (0 for an empty output).
  std::int64_t rows() const {
    if (empty_) return 0;
    std::int64_t count = 1;
    for (int axis = 0; axis + 1 < rank_; ++axis) count *= dims_[axis];
    return count;
  }
  std::int64_t row_length() const { return rank_ == 0 ? 1 : dims_[rank_ - 1]; }

  /// Calls row(offsets, inner_strides, n) for rows [first, last), in order, where offsets[k] is the
  /// element offset of operand k at the row's start and inner_strides[k] its stride along the row.
  template <class Row>
  void visit(std::int64_t first, std::int64_t last, Row&& row) const {
    std::array<std::int64_t, K> offsets{}, inner{};
    if (first >= last) return;
    if (rank_ == 0) {
      row(offsets, inner, std::int64_t{1});
      return;
    }
    for (std::size_t k = 0; k < K; ++k) inner[k] = strides_[k][rank_ - 1];
    std::array<std::int64_t, kMaxRank> index{};
    for (int axis = rank_ - 2; axis >= 0; --axis) {  // the multi-index of row `first`
      const std::int64_t below = rows_below(axis);
      index[axis] = (first / below) % dims_[axis];
      for (std::size_t k = 0; k < K; ++k) offsets[k] += index[axis] * strides_[k][axis];
    }
    const std::int64_t n = dims_[rank_ - 1];
    for (std::int64_t r = first; r < last; ++r) {
      row(offsets, inner, n);
      for (int axis = rank_ - 2; axis >= 0; --axis) {
        ++index[axis];
        for (std::size_t k = 0; k < K; ++k) offsets[k] += strides_[k][axis];
        if (index[axis] < dims_[axis]) break;
        for (std::size_t k = 0; k < K; ++k) offsets[k] -= strides_[k][axis] * dims_[axis];
        index[axis] = 0;
      }
    }
  }

 private:
  /// Rows spanned by one step of `axis` (the product of the extents between it and the row axis).
  std::int64_t rows_below(int axis) const {
    std::int64_t count = 1;
    for (int a = axis + 1; a + 1 < rank_; ++a) count *= dims_[a];
    return count;
  }

  bool empty_ = false;
  int rank_ = 0;
  std::array<std::int64_t, kMaxRank> dims_{};
  std::array<std::array<std::int64_t, kMaxRank>, K> strides_{};
};

/// Calls row(offsets, inner_strides, n) for every innermost row of `out` (see RowWalk::visit).
template <std::size_t N, class Row>
void for_each_row(Dims out, const std::array<Dims, N>& operands, Row&& row) {
  const RowWalk<N> walk(out, operands);
  walk.visit(0, walk.rows(), row);
}

/// Splits `dims` around `axis` into (outer, extent, inner) for kernels that work along one axis.
struct AxisSplit {
  std::int64_t outer = 1, extent = 1, inner = 1;
};
inline AxisSplit split_at(Dims dims, int axis) {
  AxisSplit s;
  for (int i = 0; i < static_cast<int>(dims.size()); ++i) {
    const std::int64_t d = dims[static_cast<std::size_t>(i)];
    if (i < axis) s.outer *= d;
    else if (i == axis) s.extent = d;
    else s.inner *= d;
  }
  return s;
}

}  // namespace xg::kernels
