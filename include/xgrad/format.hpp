#pragma once
// fmt formatters: DType ("f32"), Shape ("(2, 3)"), Tensor (printed like PyTorch prints tensors).
#include <string>

#include <fmt/format.h>

#include "xgrad/tensor.hpp"

namespace xg {

struct PrintOptions {
  int precision = 4;
  std::int64_t threshold = 1000;  // more elements than this are summarized with "..."
  std::int64_t edge_items = 3;
};

/// "tensor([[1.0000, 2.0000], ...])" with PyTorch's choices of fixed, integer or scientific notation.
std::string to_string(const Tensor& t, const PrintOptions& options = {});
std::string to_string(const Shape& shape);

}  // namespace xg

template <>
struct fmt::formatter<xg::DType> : fmt::formatter<std::string_view> {
  auto format(xg::DType d, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(xg::name(d), ctx);
  }
};

template <>
struct fmt::formatter<xg::Shape> : fmt::formatter<std::string_view> {
  auto format(const xg::Shape& s, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(xg::to_string(s), ctx);
  }
};

template <>
struct fmt::formatter<xg::Tensor> : fmt::formatter<std::string_view> {
  auto format(const xg::Tensor& t, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(xg::to_string(t), ctx);
  }
};
