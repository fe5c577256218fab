#pragma once
// Copies between two strided views of the same logical shape: the one loop behind permute, slice,
// its scatter, and concat.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <span>

#include "xgrad/kernels/broadcast.hpp"
#include "xgrad/kernels/parallel.hpp"

namespace xg::kernels {

/// Row-major strides (in elements) of a contiguous array of these dims.
inline std::array<std::int64_t, kMaxRank> contiguous_strides(std::span<const std::int64_t> dims) {
  std::array<std::int64_t, kMaxRank> strides{};
  std::int64_t stride = 1;
  for (int axis = static_cast<int>(dims.size()) - 1; axis >= 0; --axis) {
    strides[static_cast<std::size_t>(axis)] = stride;
    stride *= dims[static_cast<std::size_t>(axis)];
  }
  return strides;
}

/// dst[index . dst_strides] = src[index . src_strides] for every index of dims.
template <class T>
void copy_strided(const T* src, const std::int64_t* src_strides, T* dst, const std::int64_t* dst_strides,
                  std::span<const std::int64_t> dims) {
  const int rank = static_cast<int>(dims.size());
  for (std::int64_t d : dims) {
    if (d == 0) return;
  }
  if (rank == 0) {
    *dst = *src;
    return;
  }
  const std::int64_t n = dims[static_cast<std::size_t>(rank - 1)];
  const std::int64_t ss = src_strides[rank - 1], ds = dst_strides[rank - 1];
  std::array<std::int64_t, kMaxRank> index{};
  std::int64_t so = 0, dof = 0;
  while (true) {
    if (ss == 1 && ds == 1) {
      std::memcpy(dst + dof, src + so, static_cast<std::size_t>(n) * sizeof(T));
    } else {
      for (std::int64_t i = 0; i < n; ++i) dst[dof + i * ds] = src[so + i * ss];
    }
    int axis = rank - 2;
    for (; axis >= 0; --axis) {
      const auto a = static_cast<std::size_t>(axis);
      ++index[a];
      so += src_strides[axis];
      dof += dst_strides[axis];
      if (index[a] < dims[a]) break;
      so -= src_strides[axis] * dims[a];
      dof -= dst_strides[axis] * dims[a];
      index[a] = 0;
    }
    if (axis < 0) return;
  }
}

/// The same copy with the first axis split across a pool (a copy: the split changes nothing).
template <class T>
void copy_strided(ThreadPool* pool, const T* src, const std::int64_t* src_strides, T* dst, const std::int64_t* dst_strides,
                  std::span<const std::int64_t> dims) {
  std::int64_t count = 1;
  for (std::int64_t d : dims) count *= d;
  if (dims.empty() || dims[0] < 2 || !worth_splitting(pool, count)) {
    copy_strided(src, src_strides, dst, dst_strides, dims);
    return;
  }
  pool->parallel_for(dims[0], [&](std::int64_t first, std::int64_t last) {
    std::array<std::int64_t, kMaxRank> part{};
    std::copy(dims.begin(), dims.end(), part.begin());
    part[0] = last - first;
    copy_strided(src + first * src_strides[0], src_strides, dst + first * dst_strides[0], dst_strides,
                 std::span<const std::int64_t>(part.data(), dims.size()));
  });
}

}  // namespace xg::kernels
