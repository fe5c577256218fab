// Batched matrix product with broadcast batch axes and transpose flags, on CBLAS GEMM.
#include "xgrad/kernels/broadcast.hpp"
#include "xgrad/kernels/gemm.hpp"
#include "ops/builder_util.hpp"
#include "ops/emit_util.hpp"
#include "xgrad/ops.hpp"

namespace xg {
namespace {

struct MatmulDims {
  std::int64_t m, n, k;
};
MatmulDims matmul_dims(std::span<const std::int64_t> a, std::span<const std::int64_t> b, const MatmulAttr& attr) {
  const std::size_t ra = a.size(), rb = b.size();
  return {attr.transpose_a ? a[ra - 1] : a[ra - 2], attr.transpose_b ? b[rb - 2] : b[rb - 1],
          attr.transpose_a ? a[ra - 2] : a[ra - 1]};
}

void matmul_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto& attr = std::get<MatmulAttr>(node.attrs);
  const auto a_dims = in[0].dims(), b_dims = in[1].dims(), c_dims = out.dims();
  // Plain variables, not a structured binding: the lambda below captures them (clang < 16 refuses
  // to capture bindings).
  const MatmulDims dims = matmul_dims(a_dims, b_dims, attr);
  const std::int64_t m = dims.m, n = dims.n, k = dims.k;
  visit_float(out.dtype, [&]<class T>() {
    const T* a = in[0].as<T>();
    const T* b = in[1].as<T>();
    T* c = out.as<T>();
    if (k == 0) {
      std::fill(c, c + out.numel(), T(0));
      return;
    }
    // A shared right operand: the whole batch of A is one tall matrix and one GEMM.
    if (b_dims.size() == 2 && !attr.transpose_a) {
      kernels::gemm_batch(ctx.pool, false, attr.transpose_b, out.numel() / n, n, k, 1, a, 0, b, 0, c);
      return;
    }
    const auto batch = c_dims.first(c_dims.size() - 2);
    const auto a_batch = a_dims.first(a_dims.size() - 2), b_batch = b_dims.first(b_dims.size() - 2);
    kernels::for_each_row<2>(batch, {a_batch, b_batch}, [&](const auto& at, const auto& step, std::int64_t count) {
      kernels::gemm_batch(ctx.pool, attr.transpose_a, attr.transpose_b, m, n, k, count, a + at[1] * m * k, step[1] * m * k,
                          b + at[2] * k * n, step[2] * k * n, c + at[0] * m * n);
    });
  });
}

// The same GEMM calls as matmul_kernel, with every size and offset a constant.
std::string emit_matmul(const EmitArgs& args) {
  const auto& attr = std::get<MatmulAttr>(args.node.attrs);
  const auto a_dims = args.inputs[0].shape->dims(), b_dims = args.inputs[1].shape->dims();
  const auto c_dims = args.output.shape->dims();
  const MatmulDims d = matmul_dims(a_dims, b_dims, attr);
  if (d.k == 0) return {};
  const std::string& a = args.inputs[0].pointer;
  const std::string& b = args.inputs[1].pointer;
  const std::string& c = args.output.pointer;
  if (b_dims.size() == 2 && !attr.transpose_a) {
    return fmt::format("xg::kernels::gemm_batch({}.pool, false, {}, {}, {}, {}, 1, {}, 0, {}, 0, {});", args.context,
                       attr.transpose_b, args.output.shape->numel() / d.n, d.n, d.k, a, b, c);
  }
  const auto batch = std::span(c_dims).first(c_dims.size() - 2);
  const auto a_batch = std::span(a_dims).first(a_dims.size() - 2), b_batch = std::span(b_dims).first(b_dims.size() - 2);
  const auto rows = emit::rows_of<2>(batch, {a_batch, b_batch});
  if (rows.size() > emit::kMaxStraightLineRows) return {};
  std::string code;
  for (const auto& row : rows) {
    code += fmt::format("xg::kernels::gemm_batch({}.pool, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});\n", args.context, attr.transpose_a,
                        attr.transpose_b, d.m, d.n, d.k, row.n, emit::offset(a, row.start[1] * d.m * d.k),
                        row.step[1] * d.m * d.k, emit::offset(b, row.start[2] * d.k * d.n), row.step[2] * d.k * d.n,
                        emit::offset(c, row.start[0] * d.m * d.n));
  }
  return code;
}

// With C = op(A) op(B): dA and dB for each combination of flags, then summed over broadcast batches.
std::vector<Var> vjp_matmul(const VjpArgs& args) {
  const auto& attr = std::get<MatmulAttr>(args.node.attrs);
  const Var a = args.inputs[0], b = args.inputs[1], g = args.grad;
  Var da, db;
  // A shared right operand under a batch of rows (x W of a (B, S, K) activation): its gradient is
  // one product over all B * S rows, not B products of the weight's size summed afterwards.
  const std::int64_t k = a.shape()[a.rank() - 1], n = g.shape()[g.rank() - 1];
  if (b.rank() == 2 && a.rank() > 2 && !attr.transpose_a && k > 0 && n > 0) {
    const Var rows_a = reshape(a, Shape{a.shape().numel() / k, k}), rows_g = reshape(g, Shape{g.shape().numel() / n, n});
    da = matmul(g, b, false, !attr.transpose_b);
    db = attr.transpose_b ? matmul(rows_g, rows_a, true, false) : matmul(rows_a, rows_g, true, false);
    return {da, db};
  }
  if (!attr.transpose_a && !attr.transpose_b) {
    da = matmul(g, b, false, true);
    db = matmul(a, g, true, false);
  } else if (attr.transpose_a && !attr.transpose_b) {
    da = matmul(b, g, false, true);
    db = matmul(a, g, false, false);
  } else if (!attr.transpose_a && attr.transpose_b) {
    da = matmul(g, b, false, false);
    db = matmul(g, a, true, false);
  } else {
    da = matmul(b, g, true, true);
    db = matmul(g, a, true, true);
  }
  return {sum_to(da, a.shape()), sum_to(db, b.shape())};
}

std::uint64_t matmul_flops(const Node& n, std::span<const Node> nodes) {
  const Shape& a = nodes[static_cast<std::size_t>(n.inputs[0])].shape;
  const std::int64_t k = std::get<MatmulAttr>(n.attrs).transpose_a ? a[a.rank() - 2] : a[a.rank() - 1];
  return 2 * static_cast<std::uint64_t>(n.shape.numel()) * static_cast<std::uint64_t>(k);
}

}  // namespace

const OpDef op_matmul{.name = "matmul", .forward = matmul_kernel, .vjp = vjp_matmul, .emit = emit_matmul,
                      .matmul_flops = matmul_flops};

Var matmul(Var a, Var b, bool transpose_a, bool transpose_b) {
  detail::same_graph("matmul", {a, b});
  detail::require_float("matmul", a);
  detail::require_same_dtype("matmul", a, b);
  if (a.rank() == 0 || b.rank() == 0) {
    throw ShapeError(fmt::format("matmul: operands must have rank >= 1, got {} of {} and {} of {}", a.shape(),
                                 a.describe(), b.shape(), b.describe()));
  }
  // numpy.matmul's promotion of vectors: a row vector on the left, a column vector on the right.
  const bool a_vector = a.rank() == 1, b_vector = b.rank() == 1;
  if (a_vector || b_vector) {
    Var product = matmul(a_vector ? unsqueeze(a, 0) : a, b_vector ? unsqueeze(b, 1) : b, transpose_a && !a_vector,
                         transpose_b && !b_vector);
    if (b_vector) product = squeeze(product, -1);
    if (a_vector) product = squeeze(product, b_vector ? -1 : -2);
    return product;
  }
  const MatmulAttr attr{transpose_a, transpose_b};
  const auto [m, n, k] = matmul_dims(a.shape().dims(), b.shape().dims(), attr);
  const std::int64_t k_b = transpose_b ? b.shape()[b.rank() - 1] : b.shape()[b.rank() - 2];
  if (k != k_b) {
    throw ShapeError(fmt::format("matmul: inner dimensions differ: {} of {}{} has {} and {} of {}{} has {}", a.shape(),
                                 a.describe(), transpose_a ? " (transposed)" : "", k, b.shape(), b.describe(),
                                 transpose_b ? " (transposed)" : "", k_b));
  }
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  std::vector<std::int64_t> dims =
      detail::broadcast_shapes("matmul (batch axes)", a_batch, b_batch, a.describe(), b.describe()).dims();
  dims.push_back(m);
  dims.push_back(n);
  return detail::add_node(op_matmul, {a, b}, attr, a.dtype(), Shape(std::move(dims)));
}

}  // namespace xg
