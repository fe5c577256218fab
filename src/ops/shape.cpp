// Shape ops: reshape, permute, broadcast_to, slice (and its scatter), concat; squeeze, unsqueeze and
// transpose are spelled with them.
#include <algorithm>
#include <numeric>

#include "xgrad/kernels/broadcast.hpp"
#include "xgrad/kernels/strided.hpp"
#include "ops/builder_util.hpp"
#include "ops/emit_util.hpp"
#include "util/checked.hpp"
#include "xgrad/ops.hpp"

namespace xg {

void copy_forward(const Node&, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  if (in[0].data != out.data) {
    std::memcpy(out.data, in[0].data, static_cast<std::size_t>(out.numel()) * size_of(out.dtype));
  }
}

namespace {

using kernels::contiguous_strides;
using kernels::copy_strided;

/// The strides of a permute's input, read in the order of its output axes.
std::array<std::int64_t, kernels::kMaxRank> permuted_strides(std::span<const std::int64_t> in_dims, const std::vector<int>& perm) {
  const auto in_strides = contiguous_strides(in_dims);
  std::array<std::int64_t, kernels::kMaxRank> strides{};
  for (std::size_t k = 0; k < perm.size(); ++k) strides[k] = in_strides[static_cast<std::size_t>(perm[k])];
  return strides;
}

void permute_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto src_strides = permuted_strides(in[0].dims(), std::get<AxesAttr>(node.attrs).axes);
  const auto dst_strides = contiguous_strides(out.dims());
  visit_dtype(out.dtype, [&]<class T>() {
    copy_strided(ctx.pool, in[0].as<T>(), src_strides.data(), out.as<T>(), dst_strides.data(), out.dims());
  });
}

// The same strided copy with its strides as constants of the build.
std::string emit_permute(const EmitArgs& a) {
  const auto& perm = std::get<AxesAttr>(a.node.attrs).axes;
  if (perm.empty()) return {};
  const auto src = permuted_strides(a.inputs[0].shape->dims(), perm), dst = contiguous_strides(a.output.shape->dims());
  const std::span<const std::int64_t> src_strides(src.data(), perm.size()), dst_strides(dst.data(), perm.size());
  return fmt::format(
      "{{\n  static constexpr std::int64_t source_strides[] = {{{}}}, target_strides[] = {{{}}}, dims[] = {{{}}};\n"
      "  xg::kernels::copy_strided({}.pool, {}, source_strides, {}, target_strides, std::span<const std::int64_t>(dims));\n}}",
      fmt::join(src_strides, ", "), fmt::join(dst_strides, ", "), fmt::join(a.output.shape->dims(), ", "), a.context,
      a.inputs[0].pointer, a.output.pointer);
}

void broadcast_kernel(const Node&, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  visit_dtype(out.dtype, [&]<class T>() {
    const T* x = in[0].as<T>();
    T* y = out.as<T>();
    kernels::for_each_row<1>(out.dims(), {in[0].dims()}, [&](const auto& at, const auto& step, std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) y[at[0] + i] = x[at[1] + i * step[1]];
    });
  });
}

/// The strides of the sliced positions inside the full array, and the offset of the first one.
struct SliceView {
  std::array<std::int64_t, kernels::kMaxRank> strides{};
  std::int64_t offset = 0;
};
SliceView slice_view(std::span<const std::int64_t> full_dims, const SliceAttr& s) {
  SliceView v{contiguous_strides(full_dims), 0};
  const auto axis = static_cast<std::size_t>(s.axis);
  v.offset = s.start * v.strides[axis];
  v.strides[axis] *= s.step;
  return v;
}

void slice_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const SliceView v = slice_view(in[0].dims(), std::get<SliceAttr>(node.attrs));
  const auto dst_strides = contiguous_strides(out.dims());
  visit_dtype(out.dtype, [&]<class T>() {
    copy_strided(ctx.pool, in[0].as<T>() + v.offset, v.strides.data(), out.as<T>(), dst_strides.data(), out.dims());
  });
}

// A slice is a contiguous range of its operand when every axis before the sliced one has extent 1
// (or it keeps the whole axis) and it takes consecutive positions.
std::int64_t slice_as_view(const Node& node, const Node& input) {
  const auto& s = std::get<SliceAttr>(node.attrs);
  const auto dims = input.shape.dims();
  const auto axis = static_cast<std::size_t>(s.axis);
  const std::int64_t taken = node.shape[s.axis];
  const bool consecutive = s.step == 1 || taken <= 1;
  const bool whole_axis = s.start == 0 && taken == dims[axis];
  const bool leading_ones = std::all_of(dims.begin(), dims.begin() + s.axis, [](std::int64_t d) { return d == 1; });
  if (!consecutive || !(leading_ones || whole_axis)) return -1;
  return whole_axis ? 0 : slice_view(dims, s).offset;
}

void slice_scatter_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  const SliceView v = slice_view(out.dims(), std::get<SliceAttr>(node.attrs));
  const auto src_strides = contiguous_strides(in[0].dims());
  visit_dtype(out.dtype, [&]<class T>() {
    std::fill(out.as<T>(), out.as<T>() + out.numel(), T(0));
    copy_strided(in[0].as<T>(), src_strides.data(), out.as<T>() + v.offset, v.strides.data(), in[0].dims());
  });
}

void concat_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  const auto axis = static_cast<std::size_t>(std::get<AxisAttr>(node.attrs).axis);
  const auto dst_strides = contiguous_strides(out.dims());
  std::int64_t position = 0;
  for (const Buffer& part : in) {
    const auto src_strides = contiguous_strides(part.dims());
    visit_dtype(out.dtype, [&]<class T>() {
      T* target = out.as<T>() + position * dst_strides[axis];
      // A part the planner placed where it belongs (concat_parts) is there already.
      if (target != part.as<T>()) copy_strided(part.as<T>(), src_strides.data(), target, dst_strides.data(), part.dims());
    });
    position += part.dims()[axis];
  }
}

/// Along an axis with no longer axis before it, each part is one range of the output, whose bytes
/// the part may already be.
std::vector<InPlacePart> concat_parts(const Node& node, std::span<const Node> nodes) {
  const int axis = std::get<AxisAttr>(node.attrs).axis;
  for (int before = 0; before < axis; ++before) {
    if (node.shape[before] != 1) return {};
  }
  std::vector<InPlacePart> parts;
  std::int64_t offset = 0;
  for (std::size_t k = 0; k < node.inputs.size(); ++k) {
    parts.push_back({static_cast<int>(k), offset});
    offset += nodes[static_cast<std::size_t>(node.inputs[k])].shape.numel();
  }
  return parts;
}

using Grads = std::vector<Var>;
Grads vjp_reshape(const VjpArgs& a) { return {reshape(a.grad, a.inputs[0].shape())}; }
Grads vjp_permute(const VjpArgs& a) {
  const auto& perm = std::get<AxesAttr>(a.node.attrs).axes;
  std::vector<int> inverse(perm.size());
  for (std::size_t k = 0; k < perm.size(); ++k) inverse[static_cast<std::size_t>(perm[k])] = static_cast<int>(k);
  return {permute(a.grad, inverse)};
}
Grads vjp_broadcast(const VjpArgs& a) { return {sum_to(a.grad, a.inputs[0].shape())}; }
Grads vjp_slice(const VjpArgs& a) { return {slice_scatter(a.grad, std::get<SliceAttr>(a.node.attrs))}; }
Grads vjp_slice_scatter(const VjpArgs& a) {
  const auto& s = std::get<SliceAttr>(a.node.attrs);
  return {slice(a.grad, s.axis, s.start, s.stop, s.step)};
}
Grads vjp_concat(const VjpArgs& a) {
  const int axis = std::get<AxisAttr>(a.node.attrs).axis;
  Grads grads;
  std::int64_t position = 0;
  for (Var part : a.inputs) {
    const std::int64_t extent = part.shape()[axis];
    grads.push_back(slice(a.grad, axis, position, position + extent));
    position += extent;
  }
  return grads;
}

}  // namespace

const OpDef op_reshape{.name = "reshape", .forward = copy_forward, .vjp = vjp_reshape, .view = whole_view};
const OpDef op_permute{.name = "permute", .forward = permute_kernel, .vjp = vjp_permute, .emit = emit_permute};
const OpDef op_broadcast_to{.name = "broadcast_to", .forward = broadcast_kernel, .vjp = vjp_broadcast};
const OpDef op_slice{.name = "slice", .forward = slice_kernel, .vjp = vjp_slice, .view = slice_as_view};
const OpDef op_slice_scatter{.name = "slice_scatter", .forward = slice_scatter_kernel, .vjp = vjp_slice_scatter};
const OpDef op_concat{.name = "concat", .forward = concat_kernel, .vjp = vjp_concat, .in_place_parts = concat_parts};

namespace {
/// Elements start, start + step, ... below stop (step > 0), without overflow for any step.
std::int64_t slice_count(std::int64_t start, std::int64_t stop, std::int64_t step) {
  return stop > start ? (stop - start - 1) / step + 1 : 0;
}

void check_rank(std::string_view op, const Shape& shape) {
  if (shape.rank() > kernels::kMaxRank) {
    throw ShapeError(fmt::format("{}: shape {} has rank {}, above the supported {}", op, shape, shape.rank(),
                                 kernels::kMaxRank));
  }
}
}  // namespace

Var reshape(Var x, Shape shape) {
  detail::same_graph("reshape", {x});
  const std::int64_t count = x.shape().numel();
  int inferred = -1;
  for (int i = 0; i < shape.rank(); ++i) {
    if (shape[i] == -1 && inferred < 0) inferred = i;
    else if (shape[i] < 0) throw ShapeError(fmt::format("reshape of {}: bad target shape {}", x.describe(), shape));
  }
  auto too_large = [&] {
    return ShapeError(fmt::format("reshape of {}: target shape {} is too large: its element count does not fit in 64 bits",
                                  x.describe(), shape));
  };
  if (inferred >= 0) {
    Shape known = shape;
    known[inferred] = 1;
    const auto known_count = checked::product(known.dims());
    if (!known_count) throw too_large();
    if (*known_count == 0 || count % *known_count != 0) {
      throw ShapeError(fmt::format("reshape of {}: cannot infer -1 in {} from shape {}", x.describe(), shape, x.shape()));
    }
    shape[inferred] = count / *known_count;
  }
  const auto target_count = checked::product(shape.dims());
  if (!target_count) throw too_large();
  if (*target_count != count) {
    throw ShapeError(fmt::format("reshape of {}: shape {} ({} elements) cannot become {} ({} elements)", x.describe(),
                                 x.shape(), count, shape, *target_count));
  }
  check_rank("reshape", shape);
  if (shape == x.shape()) return x;
  return detail::add_node(op_reshape, {x}, {}, x.dtype(), std::move(shape));
}

Var permute(Var x, std::vector<int> perm) {
  detail::same_graph("permute", {x});
  if (static_cast<int>(perm.size()) != x.rank()) {
    throw ValueError(fmt::format("permute of {}: {} axes given for rank {}", x.describe(), perm.size(), x.rank()));
  }
  std::vector<bool> seen(perm.size());
  std::vector<std::int64_t> dims;
  for (int& axis : perm) {
    axis = normalize_axis(axis, x.rank(), fmt::format("permute of {}", x.describe()));
    if (seen[static_cast<std::size_t>(axis)]) {
      throw ValueError(fmt::format("permute of {}: axis {} appears twice", x.describe(), axis));
    }
    seen[static_cast<std::size_t>(axis)] = true;
    dims.push_back(x.shape()[axis]);
  }
  if (std::is_sorted(perm.begin(), perm.end())) return x;
  return detail::add_node(op_permute, {x}, AxesAttr{std::move(perm), false}, x.dtype(), Shape(std::move(dims)));
}

Var transpose(Var x, int axis_a, int axis_b) {
  const std::string where = fmt::format("transpose of {}", x.describe());
  axis_a = normalize_axis(axis_a, x.rank(), where);
  axis_b = normalize_axis(axis_b, x.rank(), where);
  std::vector<int> perm(static_cast<std::size_t>(x.rank()));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[static_cast<std::size_t>(axis_a)], perm[static_cast<std::size_t>(axis_b)]);
  return permute(x, perm);
}

Var broadcast_to(Var x, Shape shape) {
  detail::same_graph("broadcast_to", {x});
  check_rank("broadcast_to", shape);
  const Shape result = detail::broadcast_shapes("broadcast_to", x.shape(), shape, x.describe(), "the target");
  if (result != shape) {
    throw ShapeError(fmt::format("broadcast_to: {} of shape {} cannot broadcast to {}", x.describe(), x.shape(), shape));
  }
  if (shape == x.shape()) return x;
  return detail::add_node(op_broadcast_to, {x}, {}, x.dtype(), std::move(shape));
}

Var slice(Var x, int axis, std::int64_t start, std::int64_t stop, std::int64_t step) {
  detail::same_graph("slice", {x});
  axis = normalize_axis(axis, x.rank(), fmt::format("slice of {}", x.describe()));
  if (step <= 0) throw ValueError(fmt::format("slice of {}: step must be positive, got {}", x.describe(), step));
  const std::int64_t extent = x.shape()[axis];
  auto clamp = [&](std::int64_t i) { return std::clamp(i < 0 ? i + extent : i, std::int64_t{0}, extent); };
  start = clamp(start);
  stop = std::max(clamp(stop), start);
  Shape shape = x.shape();
  shape[axis] = slice_count(start, stop, step);
  // One element or none: the step plays no part, and a huge one would only overflow the kernel's strides.
  if (shape[axis] <= 1) {
    step = 1;
    stop = start + shape[axis];
  }
  if (shape == x.shape()) return x;
  return detail::add_node(op_slice, {x}, SliceAttr{axis, start, stop, step, extent}, x.dtype(), std::move(shape));
}

Var slice_scatter(Var g, const SliceAttr& where) {
  detail::same_graph("slice_scatter", {g});
  Shape shape = g.shape();
  const std::int64_t count = where.step > 0 ? slice_count(where.start, where.stop, where.step) : -1;
  if (where.axis < 0 || where.axis >= g.rank() || shape[where.axis] != count) {
    throw ShapeError(fmt::format("slice_scatter of {}: shape {} does not match the slice", g.describe(), g.shape()));
  }
  shape[where.axis] = where.extent;
  return detail::add_node(op_slice_scatter, {g}, where, g.dtype(), std::move(shape));
}

Var concat(const std::vector<Var>& xs, int axis) {
  if (xs.empty()) throw ValueError("concat: no operands");
  const Var first = xs.front();
  axis = normalize_axis(axis, first.rank(), fmt::format("concat of {}", first.describe()));
  Shape shape = first.shape();
  shape[axis] = 0;
  for (Var x : xs) {
    detail::same_graph("concat", {first, x});
    detail::require_same_dtype("concat", first, x);
    bool fits = x.rank() == first.rank();
    for (int i = 0; fits && i < x.rank(); ++i) fits = i == axis || x.shape()[i] == first.shape()[i];
    if (!fits) {
      throw ShapeError(fmt::format("concat along axis {}: {} has shape {}, which does not match {} of {}", axis,
                                   x.describe(), x.shape(), first.shape(), first.describe()));
    }
    const auto extent = checked::add(shape[axis], x.shape()[axis]);
    if (!extent) {
      throw ShapeError(fmt::format("concat along axis {}: the extents up to {} of shape {} add up to more than 64 bits count",
                                   axis, x.describe(), x.shape()));
    }
    shape[axis] = *extent;
  }
  if (xs.size() == 1) return first;
  return first.graph().add_node(op_concat, xs, AxisAttr{axis}, first.dtype(), std::move(shape));
}

Var squeeze(Var x, int axis) {
  axis = normalize_axis(axis, x.rank(), fmt::format("squeeze of {}", x.describe()));
  if (x.shape()[axis] != 1) {
    throw ShapeError(fmt::format("squeeze of {}: axis {} has extent {}, not 1", x.describe(), axis, x.shape()[axis]));
  }
  std::vector<std::int64_t> dims = x.shape().dims();
  dims.erase(dims.begin() + axis);
  return reshape(x, Shape(std::move(dims)));
}

Var unsqueeze(Var x, int axis) {
  axis = normalize_axis(axis, x.rank() + 1, fmt::format("unsqueeze of {}", x.describe()));
  std::vector<std::int64_t> dims = x.shape().dims();
  dims.insert(dims.begin() + axis, 1);
  return reshape(x, Shape(std::move(dims)));
}

}  // namespace xg
