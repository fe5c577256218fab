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

/// Calls row(offsets, inner_strides, n) for every innermost row of `out`, where offsets[k] is the
/// element offset of operand k at the row's start (operand 0 is the output, contiguous) and
/// inner_strides[k] its stride along the row.
template <std::size_t N, class Row>
void for_each_row(Dims out, const std::array<Dims, N>& operands, Row&& row) {
  constexpr std::size_t K = N + 1;
  for (std::int64_t extent : out) {
    if (extent == 0) return;
  }
  int rank = 0;
  std::array<std::int64_t, kMaxRank> dims{};
  std::array<std::array<std::int64_t, kMaxRank>, K> strides{};
  {
    std::array<std::array<std::int64_t, kMaxRank>, K> full{};
    broadcast_strides(out, out, full[0].data());
    for (std::size_t k = 0; k < N; ++k) broadcast_strides(operands[k], out, full[k + 1].data());
    // Merge axis into the one after it whenever every operand steps through both as one.
    for (std::size_t axis = 0; axis < out.size(); ++axis) {
      const std::int64_t extent = out[axis];
      if (extent == 1) continue;
      bool merge = rank > 0;
      for (std::size_t k = 0; k < K && merge; ++k) {
        merge = strides[k][rank - 1] == full[k][axis] * extent;
      }
      if (merge) {
        dims[rank - 1] *= extent;
        for (std::size_t k = 0; k < K; ++k) strides[k][rank - 1] = full[k][axis];
      } else {
        dims[rank] = extent;
        for (std::size_t k = 0; k < K; ++k) strides[k][rank] = full[k][axis];
        ++rank;
      }
    }
  }
  std::array<std::int64_t, K> offsets{};
  std::array<std::int64_t, K> inner{};
  if (rank == 0) {
    row(offsets, inner, std::int64_t{1});
    return;
  }
  for (std::size_t k = 0; k < K; ++k) inner[k] = strides[k][rank - 1];
  const std::int64_t n = dims[rank - 1];
  std::array<std::int64_t, kMaxRank> index{};
  while (true) {
    row(offsets, inner, n);
    int axis = rank - 2;
    for (; axis >= 0; --axis) {
      ++index[axis];
      for (std::size_t k = 0; k < K; ++k) offsets[k] += strides[k][axis];
      if (index[axis] < dims[axis]) break;
      for (std::size_t k = 0; k < K; ++k) offsets[k] -= strides[k][axis] * dims[axis];
      index[axis] = 0;
    }
    if (axis < 0) return;
  }
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
