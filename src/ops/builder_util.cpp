#include "ops/builder_util.hpp"

#include "xgrad/ops.hpp"

#include <algorithm>

namespace xg::detail {

Graph& same_graph(std::string_view op, std::initializer_list<Var> vars) {
  Graph* graph = nullptr;
  for (Var v : vars) {
    if (!v.valid()) throw ValueError(fmt::format("{}: an operand is an empty Var", op));
    if (graph != nullptr && &v.graph() != graph) {
      throw ValueError(fmt::format("{}: operands come from different graphs ({})", op, v.describe()));
    }
    graph = &v.graph();
  }
  return *graph;
}

void require_float(std::string_view op, Var x) {
  if (!is_float(x.dtype())) {
    throw DTypeError(fmt::format("{}: {} has dtype {}, but the op needs f32 or f64", op, x.describe(), x.dtype()));
  }
}

void require_int(std::string_view op, Var x) {
  if (x.dtype() != DType::i32) {
    throw DTypeError(fmt::format("{}: {} has dtype {}, but the op needs i32 indices", op, x.describe(), x.dtype()));
  }
}

void require_same_dtype(std::string_view op, Var a, Var b) {
  if (a.dtype() != b.dtype()) {
    throw DTypeError(fmt::format("{}: dtypes differ: {} is {} and {} is {} (cast one first)", op, a.describe(),
                                 a.dtype(), b.describe(), b.dtype()));
  }
}

Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b, std::string_view a_desc,
                       std::string_view b_desc) {
  const int rank = std::max(a.rank(), b.rank());
  Shape out(std::vector<std::int64_t>(static_cast<std::size_t>(rank), 1));
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i, ib = b.rank() - rank + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      throw ShapeError(fmt::format("{}: shapes {} of {} and {} of {} do not broadcast (axis {}: {} vs {})", op, a,
                                   a_desc, b, b_desc, i - rank, da, db));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_shapes(std::string_view op, Var a, Var b) {
  return broadcast_shapes(op, a.shape(), b.shape(), a.describe(), b.describe());
}

Var zeros_like(Var x) { return broadcast_to(scalar_like(x, 0.0), x.shape()); }

Var record_part(Var record, std::int64_t offset, const Shape& shape) {
  return reshape(slice(record, 0, offset, offset + shape.numel()), shape);
}

}  // namespace xg::detail
