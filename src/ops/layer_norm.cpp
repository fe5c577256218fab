// layer_norm over the last axes with optional gamma and beta, and its fused first derivative.
#include <cmath>

#include "xgrad/kernels/layer_norm.hpp"
#include "ops/builder_util.hpp"
#include "ops/emit_util.hpp"
#include "xgrad/ops.hpp"

namespace xg {
namespace {

/// (rows, row length) of x normalized over its last `normalized_ndim` axes.
std::pair<std::int64_t, std::int64_t> rows_of(const Shape& x, int normalized_ndim) {
  std::int64_t n = 1;
  const auto& dims = x.dims();
  for (std::size_t i = dims.size() - static_cast<std::size_t>(normalized_ndim); i < dims.size(); ++i) n *= dims[i];
  return {n == 0 ? 0 : x.numel() / n, n};
}

void layer_norm_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto& attr = std::get<NormAttr>(node.attrs);
  const auto shape = rows_of(*in[0].shape, attr.normalized_ndim);  // captured below: no structured binding
  const std::int64_t rows = shape.first, n = shape.second;
  visit_float(out.dtype, [&]<class T>() {
    const T* gamma = attr.has_gamma ? in[1].as<T>() : nullptr;
    const T* beta = attr.has_beta ? in[attr.has_gamma ? 2 : 1].as<T>() : nullptr;
    kernels::layer_norm_forward(ctx.pool, in[0].as<T>(), gamma, beta, out.as<T>(), rows, n, static_cast<T>(attr.eps));
  });
}

// The fused backward pass writes one record: [ dx | dgamma (if has_gamma) | dbeta (if has_beta) ].
struct GradLayout {
  std::int64_t d_gamma = 0, d_beta = 0, total = 0;
};
GradLayout grad_layout(const Shape& x, std::int64_t n, const NormAttr& attr) {
  GradLayout l;
  l.d_gamma = x.numel();
  l.d_beta = l.d_gamma + (attr.has_gamma ? n : 0);
  l.total = l.d_beta + (attr.has_beta ? n : 0);
  return l;
}

// in: x, d objective / d y[, gamma]; the workspace holds the row blocks' sums for dgamma and dbeta.
void layer_norm_grad_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto& attr = std::get<NormAttr>(node.attrs);
  const auto shape = rows_of(*in[0].shape, attr.normalized_ndim);  // captured below: no structured binding
  const std::int64_t rows = shape.first, n = shape.second;
  const GradLayout layout = grad_layout(*in[0].shape, n, attr);
  visit_float(out.dtype, [&]<class T>() {
    T* record = out.as<T>();
    kernels::layer_norm_backward(ctx.pool, in[0].as<T>(), in[1].as<T>(), attr.has_gamma ? in[2].as<T>() : nullptr, record,
                                 attr.has_gamma ? record + layout.d_gamma : nullptr,
                                 attr.has_beta ? record + layout.d_beta : nullptr, static_cast<T*>(ctx.workspace), rows, n,
                                 static_cast<T>(attr.eps));
  });
}

std::size_t layer_norm_grad_workspace(const Node& node, std::span<const Node> nodes, int) {
  const Shape& x = nodes[static_cast<std::size_t>(node.inputs[0])].shape;
  const auto [rows, n] = rows_of(x, std::get<NormAttr>(node.attrs).normalized_ndim);
  return static_cast<std::size_t>(kernels::layer_norm_backward_scratch(rows, n)) * size_of(node.dtype);
}

// Generated code: the same row kernel, with rows, row length and eps as constants.
std::string emit_layer_norm(const EmitArgs& a) {
  const auto& attr = std::get<NormAttr>(a.node.attrs);
  const auto [rows, n] = rows_of(*a.inputs[0].shape, attr.normalized_ndim);
  const std::string type(emit::cpp_type(a.output.dtype));
  const std::string none = fmt::format("static_cast<const {}*>(nullptr)", type);
  const std::string gamma = attr.has_gamma ? a.inputs[1].pointer : none;
  const std::string beta = attr.has_beta ? a.inputs[attr.has_gamma ? 2 : 1].pointer : none;
  return fmt::format("xg::kernels::layer_norm_forward({}.pool, {}, {}, {}, {}, {}, {}, static_cast<{}>({:a}));", a.context, a.inputs[0].pointer,
                     gamma, beta, a.output.pointer, rows, n, type, attr.eps);
}

// One fused node for dx, dgamma and dbeta, whose parts are views.
std::vector<Var> vjp_layer_norm(const VjpArgs& a) {
  const auto& attr = std::get<NormAttr>(a.node.attrs);
  const Var x = a.inputs[0];
  std::vector<Var> operands{x, a.grad};
  if (attr.has_gamma) operands.push_back(a.inputs[1]);
  const std::int64_t n = rows_of(x.shape(), attr.normalized_ndim).second;
  const GradLayout layout = grad_layout(x.shape(), n, attr);
  const Var record = x.graph().add_node(op_layer_norm_grad, operands, attr, x.dtype(), Shape{layout.total});
  std::vector<Var> grads{detail::record_part(record, 0, x.shape())};
  if (attr.has_gamma) grads.push_back(detail::record_part(record, layout.d_gamma, a.inputs[1].shape()));
  if (attr.has_beta) grads.push_back(detail::record_part(record, layout.d_beta, a.inputs.back().shape()));
  return grads;
}

}  // namespace

const OpDef op_layer_norm{.name = "layer_norm", .forward = layer_norm_kernel, .vjp = vjp_layer_norm,
                          .emit = emit_layer_norm};
// A fused backward kernel without a rule of its own: layer_norm is differentiable once.
const OpDef op_layer_norm_grad{.name = "layer_norm_grad", .forward = layer_norm_grad_kernel,
                               .workspace = layer_norm_grad_workspace};

Var layer_norm(Var x, int normalized_ndim, double eps, std::optional<Var> gamma, std::optional<Var> beta) {
  detail::same_graph("layer_norm", {x});
  detail::require_float("layer_norm", x);
  if (normalized_ndim < 1 || normalized_ndim > x.rank()) {
    throw ValueError(fmt::format("layer_norm of {}: cannot normalize over the last {} axes of shape {}", x.describe(),
                                 normalized_ndim, x.shape()));
  }
  if (!(eps > 0.0)) throw ValueError(fmt::format("layer_norm of {}: eps must be positive, got {}", x.describe(), eps));
  const Shape normalized(x.shape().end() - normalized_ndim, x.shape().end());
  std::vector<Var> inputs{x};
  for (const auto& [affine, role] : {std::pair{gamma, "gamma"}, std::pair{beta, "beta"}}) {
    if (!affine) continue;
    detail::same_graph("layer_norm", {x, *affine});
    detail::require_same_dtype("layer_norm", x, *affine);
    if (affine->shape() != normalized) {
      throw ShapeError(fmt::format("layer_norm of {}: {} {} has shape {}, expected the normalized shape {}",
                                   x.describe(), role, affine->describe(), affine->shape(), normalized));
    }
    inputs.push_back(*affine);
  }
  return detail::add_node(op_layer_norm, inputs, NormAttr{normalized_ndim, eps, gamma.has_value(), beta.has_value()},
                          x.dtype(), x.shape());
}

}  // namespace xg
