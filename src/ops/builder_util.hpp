#pragma once
// Checks shared by the op builders. Each throws with the op's name and the offending nodes.
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "xgrad/error.hpp"
#include "xgrad/format.hpp"
#include "xgrad/graph.hpp"
#include "xgrad/op_def.hpp"

namespace xg::detail {

/// Throws unless every Var is valid and all belong to one graph; returns that graph.
Graph& same_graph(std::string_view op, std::initializer_list<Var> vars);
void require_float(std::string_view op, Var x);
void require_int(std::string_view op, Var x);
void require_same_dtype(std::string_view op, Var a, Var b);
/// NumPy broadcasting of two shapes; ShapeError naming op and both nodes when they do not fit.
Shape broadcast_shapes(std::string_view op, Var a, Var b);
Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b, std::string_view a_desc,
                       std::string_view b_desc);

inline Var add_node(const OpDef& op, const std::vector<Var>& inputs, Attrs attrs, DType dtype, Shape shape) {
  return inputs.front().graph().add_node(op, inputs, std::move(attrs), dtype, std::move(shape));
}
/// A scalar constant of x's dtype in x's graph.
/// The part [offset, offset + shape.numel()) of a flat record (a fused kernel's several results in
/// one node), shaped: a zero-copy view once compiled.
Var record_part(Var record, std::int64_t offset, const Shape& shape);

inline Var scalar_like(Var x, double value) { return x.graph().scalar(value, x.dtype()); }
/// Zeros of x's shape and dtype (a broadcast scalar).
Var zeros_like(Var x);

}  // namespace xg::detail
