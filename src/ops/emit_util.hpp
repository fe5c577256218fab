#pragma once
// What the ops' code emitters share: the C++ spelling of a dtype and of an offset pointer, and the
// rows of a broadcast loop worked out at build time.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "xgrad/kernels/broadcast.hpp"
#include "xgrad/op_def.hpp"

namespace xg::emit {

inline std::string_view cpp_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return "float";
    case DType::f64: return "double";
    case DType::i32: break;
  }
  return "std::int32_t";
}

/// `pointer + offset` (in elements), or the pointer itself when the offset is 0.
inline std::string offset(const std::string& pointer, std::int64_t elements) {
  return elements == 0 ? pointer : fmt::format("{} + {}", pointer, elements);
}

/// One call of kernels::for_each_row's row function: where each operand starts (k = 0 is the
/// output), its stride along the row, and the row's length.
template <std::size_t K>
struct Row {
  std::array<std::int64_t, K> start{}, step{};
  std::int64_t n = 0;
};

/// Every row kernels::for_each_row visits for this output and these operands, in its order.
template <std::size_t N>
std::vector<Row<N + 1>> rows_of(kernels::Dims out, const std::array<kernels::Dims, N>& operands) {
  std::vector<Row<N + 1>> rows;
  kernels::for_each_row<N>(out, operands, [&](const auto& at, const auto& step, std::int64_t n) {
    Row<N + 1>& row = rows.emplace_back();
    for (std::size_t k = 0; k <= N; ++k) {
      row.start[k] = at[k];
      row.step[k] = step[k];
    }
    row.n = n;
  });
  return rows;
}

/// When row r of every operand starts at r * outer[k] with the same steps and length throughout
/// (a bias over rows, a same-shape operation), those outer strides.
template <std::size_t K>
std::optional<std::array<std::int64_t, K>> outer_strides(const std::vector<Row<K>>& rows) {
  std::array<std::int64_t, K> outer{};
  if (rows.empty()) return std::nullopt;
  for (std::size_t k = 0; k < K; ++k) outer[k] = rows.size() > 1 ? rows[1].start[k] - rows[0].start[k] : 0;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].n != rows[0].n || rows[r].step != rows[0].step) return std::nullopt;
    for (std::size_t k = 0; k < K; ++k) {
      if (rows[r].start[k] != static_cast<std::int64_t>(r) * outer[k]) return std::nullopt;
    }
  }
  return outer;
}

/// Generated code spells out at most this many rows, one call each; beyond, it calls the kernel.
inline constexpr std::size_t kMaxStraightLineRows = 32;

}  // namespace xg::emit
