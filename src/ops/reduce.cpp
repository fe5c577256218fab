// Reductions over axes: sum and max (mean is sum scaled), and sum_to, the adjoint of broadcasting.
#include <algorithm>
#include <limits>
#include <optional>
#include <string>

#include "xgrad/kernels/broadcast.hpp"
#include "xgrad/kernels/reduce.hpp"
#include "ops/builder_util.hpp"
#include "ops/emit_util.hpp"
#include "xgrad/ops.hpp"

namespace xg {
namespace {

/// The output's shape with the reduced axes kept as 1, on the stack (no allocation at run time).
struct KeptDims {
  std::array<std::int64_t, kernels::kMaxRank> dims{};
  std::size_t rank = 0;
  std::span<const std::int64_t> span() const { return {dims.data(), rank}; }
};
KeptDims kept_dims(const Buffer& in, const AxesAttr& attr) {
  KeptDims k;
  k.rank = in.dims().size();
  for (std::size_t i = 0; i < k.rank; ++i) k.dims[i] = in.dims()[i];
  for (int axis : attr.axes) k.dims[static_cast<std::size_t>(axis)] = 1;
  return k;
}

Shape kept_shape(const Shape& in, const std::vector<int>& axes) {
  Shape s = in;
  for (int axis : axes) s[axis] = 1;
  return s;
}

// The output is seen as an operand broadcast over the input, so one row walk serves every axis set:
// a row along a reduced axis collapses to one element, a row along a kept axis updates a row.
template <bool IsMax>
void reduce_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  visit_dtype(out.dtype, [&]<class T>() {
    const T* x = in[0].as<T>();
    T* y = out.as<T>();
    std::fill(y, y + out.numel(), kernels::reduce_identity<IsMax, T>());
    const KeptDims kept = kept_dims(in[0], std::get<AxesAttr>(node.attrs));
    kernels::for_each_row<1>(in[0].dims(), {kept.span()}, [&](const auto& at, const auto& step, std::int64_t n) {
      kernels::reduce_row<IsMax>(x + at[0], y + at[1], step[1], n);
    });
  });
}

void sum_of_product_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  const auto& attr = std::get<SumOfProductAttr>(node.attrs);
  visit_dtype(out.dtype, [&]<class T>() {
    const T* a = in[0].as<T>();
    const T* b = in[1].as<T>();
    T* y = out.as<T>();
    std::fill(y, y + out.numel(), T(0));
    const KeptDims kept = kept_dims(in[0], attr.sum);
    kernels::for_each_row<1>(in[0].dims(), {kept.span()}, [&](const auto& at, const auto& step, std::int64_t n) {
      kernels::sum_product_row(a + at[0], attr.negate_a, b + at[0], attr.negate_b, y + at[1], step[1], n);
    });
  });
}

/// The rows of a reduction of `x` over `axes` at constant strides, as generated code walks them:
/// the row walk's arguments after the input pointer, or nothing when the rows are not that regular.
std::optional<std::string> constant_stride_rows(const EmitArgs& a, const Shape& x, const std::vector<int>& axes) {
  const Shape kept = kept_shape(x, axes);
  const auto rows = emit::rows_of<1>(x.dims(), {kept.dims()});
  const auto outer = emit::outer_strides(rows);
  if (!outer || rows[0].step[0] != 1) return std::nullopt;
  return fmt::format("{}, {}, {}, {}, {}, {}, {}", (*outer)[0], a.output.pointer, (*outer)[1], rows[0].step[1], rows.size(), rows[0].n,
                     a.output.shape->numel());
}

std::string emit_sum_of_product(const EmitArgs& a) {
  const Shape& x = *a.inputs[0].shape;
  const auto& attr = std::get<SumOfProductAttr>(a.node.attrs);
  if (x.numel() == 0) return {};
  const auto rows = constant_stride_rows(a, x, attr.sum.axes);
  if (!rows) return {};
  return fmt::format("xg::kernels::sum_product_rows({}, {}, {}, {}, {});", a.inputs[0].pointer, attr.negate_a, a.inputs[1].pointer,
                     attr.negate_b, *rows);
}

template <bool IsMax>
std::string emit_reduce(const EmitArgs& a) {
  const Shape& x = *a.inputs[0].shape;
  if (x.numel() == 0) return {};
  const auto rows = constant_stride_rows(a, x, std::get<AxesAttr>(a.node.attrs).axes);
  if (!rows) return {};
  return fmt::format("xg::kernels::reduce_rows<{}>({}, {});", IsMax, a.inputs[0].pointer, *rows);
}

/// g (the reduced output's gradient) spread back over x's shape.
Var spread(Var g, Var x, const AxesAttr& attr) {
  return broadcast_to(reshape(g, kept_shape(x.shape(), attr.axes)), x.shape());
}

std::vector<Var> vjp_sum(const VjpArgs& a) { return {spread(a.grad, a.inputs[0], std::get<AxesAttr>(a.node.attrs))}; }

std::vector<Var> vjp_max(const VjpArgs& a) {
  const auto& attr = std::get<AxesAttr>(a.node.attrs);
  const Var x = a.inputs[0];
  const Var is_max = equal(x, spread(a.output, x, attr));
  const Var ties = sum(is_max, attr.axes, true);
  return {is_max * spread(a.grad, x, attr) / ties};
}

Var reduce(const OpDef& op, Var x, std::vector<int> axes, bool keepdims) {
  detail::same_graph(op.name, {x});
  for (int& axis : axes) axis = normalize_axis(axis, x.rank(), fmt::format("{} of {}", op.name, x.describe()));
  if (axes.empty()) {
    for (int i = 0; i < x.rank(); ++i) axes.push_back(i);
  }
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  std::vector<std::int64_t> dims;
  for (int i = 0; i < x.rank(); ++i) {
    const bool reduced = std::binary_search(axes.begin(), axes.end(), i);
    if (reduced && x.shape()[i] == 0 && op.name == "max") {
      throw ShapeError(fmt::format("max of {}: axis {} is empty", x.describe(), i));
    }
    if (!reduced) dims.push_back(x.shape()[i]);
    else if (keepdims) dims.push_back(1);
  }
  return detail::add_node(op, {x}, AxesAttr{std::move(axes), keepdims}, x.dtype(), Shape(std::move(dims)));
}

}  // namespace

const OpDef op_sum{.name = "sum", .forward = reduce_kernel<false>, .vjp = vjp_sum, .emit = emit_reduce<false>};
const OpDef op_max{.name = "max", .forward = reduce_kernel<true>, .vjp = vjp_max, .emit = emit_reduce<true>};
const OpDef op_sum_of_product{.name = "sum_of_product", .forward = sum_of_product_kernel, .differentiable = false,
                              .emit = emit_sum_of_product};

Var sum(Var x, std::vector<int> axes, bool keepdims) { return reduce(op_sum, x, std::move(axes), keepdims); }
Var max(Var x, std::vector<int> axes, bool keepdims) { return reduce(op_max, x, std::move(axes), keepdims); }

Var mean(Var x, std::vector<int> axes, bool keepdims) {
  detail::require_float("mean", x);
  const Var total = sum(x, std::move(axes), keepdims);
  const std::int64_t count = x.shape().numel() / std::max<std::int64_t>(total.shape().numel(), 1);
  return total * (1.0 / static_cast<double>(std::max<std::int64_t>(count, 1)));
}

Var sum_to(Var g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int lead = g.rank() - shape.rank();
  if (lead < 0) {
    throw ShapeError(fmt::format("sum_to: {} of shape {} cannot be summed to the larger rank of {}", g.describe(),
                                 g.shape(), shape));
  }
  std::vector<int> axes;
  for (int i = 0; i < g.rank(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && g.shape()[i] != 1)) axes.push_back(i);
    else if (shape[i - lead] != g.shape()[i]) {
      throw ShapeError(fmt::format("sum_to: shape {} of {} was not broadcast from {}", g.shape(), g.describe(), shape));
    }
  }
  return reshape(sum(g, axes, true), shape);
}

}  // namespace xg
