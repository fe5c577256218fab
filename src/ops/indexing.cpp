// Integer indexing: embedding rows and their scatter-add adjoint, pick/unpick along an axis, one_hot.
// Every index is checked when the Program runs; a bad one raises IndexError with its position.
#include <algorithm>
#include <cstring>

#include "xgrad/kernels/broadcast.hpp"
#include "ops/builder_util.hpp"
#include "xgrad/ops.hpp"

namespace xg {
namespace {

/// "[1, 2]": the multi-index of flat position `flat` in dims.
std::string position(std::int64_t flat, std::span<const std::int64_t> dims) {
  std::vector<std::int64_t> index(dims.size());
  for (std::size_t a = dims.size(); a-- > 0;) {
    index[a] = dims[a] == 0 ? 0 : flat % dims[a];
    flat = dims[a] == 0 ? 0 : flat / dims[a];
  }
  return fmt::format("[{}]", fmt::join(index, ", "));
}

/// The index at flat position p, checked against [0, depth) unless it is the ignored one.
std::int64_t checked_index(const Node& node, const Buffer& indices, std::int64_t p, std::int64_t depth,
                           std::int64_t ignore = INT64_MIN) {
  const std::int64_t i = indices.as<std::int32_t>()[p];
  if (i != ignore && (i < 0 || i >= depth)) {
    throw IndexError(fmt::format("{}: index {} at position {} is outside [0, {})", node.op_name(), i,
                                 position(p, indices.dims()), depth));
  }
  return i;
}

void embedding_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  const std::int64_t rows = in[0].dims()[0];
  const std::int64_t width = rows == 0 ? 0 : in[0].numel() / rows;
  const std::size_t row_bytes = static_cast<std::size_t>(width) * size_of(out.dtype);
  const auto* table = static_cast<const std::byte*>(in[0].data);
  auto* y = static_cast<std::byte*>(out.data);
  for (std::int64_t p = 0, n = in[1].numel(); p < n; ++p) {
    const std::int64_t row = checked_index(node, in[1], p, rows);
    std::memcpy(y + static_cast<std::size_t>(p) * row_bytes, table + static_cast<std::size_t>(row) * row_bytes, row_bytes);
  }
}

void embedding_grad_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  const std::int64_t rows = out.dims()[0];
  const std::int64_t width = rows == 0 ? 0 : out.numel() / rows;
  visit_float(out.dtype, [&]<class T>() {
    const T* g = in[0].as<T>();
    T* table = out.as<T>();
    std::fill(table, table + out.numel(), T(0));
    for (std::int64_t p = 0, n = in[1].numel(); p < n; ++p) {
      T* row = table + checked_index(node, in[1], p, rows) * width;
      const T* src = g + p * width;
      for (std::int64_t i = 0; i < width; ++i) row[i] += src[i];
    }
  });
}

// pick reads x of shape (outer, depth, inner) at [o, index[o, j], j]; unpick writes there.
template <bool Place>
void pick_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  const auto& attr = std::get<IndexAttr>(node.attrs);
  const Buffer& full = Place ? out : in[0];
  const auto split = kernels::split_at(full.dims(), attr.axis);
  visit_float(out.dtype, [&]<class T>() {
    const T* src = in[0].as<T>();
    T* dst = out.as<T>();
    if constexpr (Place) std::fill(dst, dst + out.numel(), T(0));
    for (std::int64_t o = 0; o < split.outer; ++o) {
      for (std::int64_t j = 0; j < split.inner; ++j) {
        const std::int64_t p = o * split.inner + j;
        const std::int64_t k = checked_index(node, in[1], p, split.extent, attr.ignore_index);
        const std::int64_t at = (o * split.extent + k) * split.inner + j;
        if constexpr (Place) {
          if (k != attr.ignore_index) dst[at] = src[p];
        } else {
          dst[p] = k == attr.ignore_index ? T(0) : src[at];
        }
      }
    }
  });
}

void one_hot_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  const std::int64_t depth = std::get<IndexAttr>(node.attrs).depth;
  visit_dtype(out.dtype, [&]<class T>() {
    T* y = out.as<T>();
    std::fill(y, y + out.numel(), T(0));
    for (std::int64_t p = 0, n = in[0].numel(); p < n; ++p) y[p * depth + checked_index(node, in[0], p, depth)] = T(1);
  });
}

using Grads = std::vector<Var>;
Grads vjp_embedding(const VjpArgs& a) { return {embedding_grad(a.grad, a.inputs[1], a.inputs[0].shape()[0]), Var{}}; }
Grads vjp_embedding_grad(const VjpArgs& a) { return {embedding(a.grad, a.inputs[1]), Var{}}; }
std::optional<std::int64_t> ignored(const IndexAttr& attr) {
  if (attr.ignore_index == INT64_MIN) return std::nullopt;
  return attr.ignore_index;
}
Grads vjp_pick(const VjpArgs& a) {
  const auto& attr = std::get<IndexAttr>(a.node.attrs);
  return {unpick(a.grad, a.inputs[1], attr.axis, attr.depth, ignored(attr)), Var{}};
}
Grads vjp_unpick(const VjpArgs& a) {
  const auto& attr = std::get<IndexAttr>(a.node.attrs);
  return {pick(a.grad, a.inputs[1], attr.axis, ignored(attr)), Var{}};
}

void check_index_shape(std::string_view op, Var index, const Shape& expected, Var x) {
  if (index.shape() != expected) {
    throw ShapeError(fmt::format("{}: index {} has shape {}, but {} of shape {} needs {}", op, index.describe(),
                                 index.shape(), x.describe(), x.shape(), expected));
  }
}

}  // namespace

const OpDef op_embedding{.name = "embedding", .forward = embedding_kernel, .vjp = vjp_embedding};
const OpDef op_embedding_grad{.name = "embedding_grad", .forward = embedding_grad_kernel, .vjp = vjp_embedding_grad};
const OpDef op_pick{.name = "pick", .forward = pick_kernel<false>, .vjp = vjp_pick};
const OpDef op_unpick{.name = "unpick", .forward = pick_kernel<true>, .vjp = vjp_unpick};
const OpDef op_one_hot{.name = "one_hot", .forward = one_hot_kernel, .differentiable = false};

Var embedding(Var table, Var indices) {
  detail::same_graph("embedding", {table, indices});
  detail::require_float("embedding", table);
  detail::require_int("embedding", indices);
  if (table.rank() < 1) throw ShapeError(fmt::format("embedding: table {} must have rank >= 1", table.describe()));
  std::vector<std::int64_t> dims = indices.shape().dims();
  dims.insert(dims.end(), table.shape().begin() + 1, table.shape().end());
  return detail::add_node(op_embedding, {table, indices}, {}, table.dtype(), Shape(std::move(dims)));
}

Var embedding_grad(Var g, Var indices, std::int64_t rows) {
  detail::same_graph("embedding_grad", {g, indices});
  detail::require_float("embedding_grad", g);
  detail::require_int("embedding_grad", indices);
  const int lead = indices.rank();
  if (g.rank() < lead || !std::equal(indices.shape().begin(), indices.shape().end(), g.shape().begin())) {
    throw ShapeError(fmt::format("embedding_grad: {} of shape {} does not start with the index shape {}", g.describe(),
                                 g.shape(), indices.shape()));
  }
  std::vector<std::int64_t> dims{rows};
  dims.insert(dims.end(), g.shape().begin() + lead, g.shape().end());
  return detail::add_node(op_embedding_grad, {g, indices}, {}, g.dtype(), Shape(std::move(dims)));
}

Var pick(Var x, Var index, int axis, std::optional<std::int64_t> ignore_index) {
  detail::same_graph("pick", {x, index});
  detail::require_float("pick", x);
  detail::require_int("pick", index);
  axis = normalize_axis(axis, x.rank(), fmt::format("pick from {}", x.describe()));
  std::vector<std::int64_t> dims = x.shape().dims();
  dims.erase(dims.begin() + axis);
  Shape shape(std::move(dims));
  check_index_shape("pick", index, shape, x);
  const IndexAttr attr{axis, x.shape()[axis], ignore_index.value_or(INT64_MIN)};
  return detail::add_node(op_pick, {x, index}, attr, x.dtype(), std::move(shape));
}

Var unpick(Var g, Var index, int axis, std::int64_t depth, std::optional<std::int64_t> ignore_index) {
  detail::same_graph("unpick", {g, index});
  detail::require_float("unpick", g);
  detail::require_int("unpick", index);
  check_index_shape("unpick", index, g.shape(), g);
  axis = normalize_axis(axis, g.rank() + 1, fmt::format("unpick into {}", g.describe()));
  std::vector<std::int64_t> dims = g.shape().dims();
  dims.insert(dims.begin() + axis, depth);
  return detail::add_node(op_unpick, {g, index}, IndexAttr{axis, depth, ignore_index.value_or(INT64_MIN)}, g.dtype(),
                          Shape(std::move(dims)));
}

Var one_hot(Var indices, std::int64_t depth, DType dtype) {
  detail::same_graph("one_hot", {indices});
  detail::require_int("one_hot", indices);
  if (depth <= 0) throw ValueError(fmt::format("one_hot of {}: depth must be positive, got {}", indices.describe(), depth));
  std::vector<std::int64_t> dims = indices.shape().dims();
  dims.push_back(depth);
  return detail::add_node(op_one_hot, {indices}, IndexAttr{-1, depth, INT64_MIN}, dtype, Shape(std::move(dims)));
}

}  // namespace xg
