// Elementwise ops: unary math, broadcasting binary arithmetic, comparisons, where, cast.
#include <cmath>
#include <numbers>

#include "xgrad/kernels/broadcast.hpp"
#include "xgrad/kernels/functors.hpp"
#include "xgrad/kernels/parallel.hpp"
#include "xgrad/kernels/simd.hpp"
#include "ops/builder_util.hpp"
#include "ops/emit_util.hpp"
#include "xgrad/ops.hpp"

namespace xg {
namespace {

using kernels::map_binary;
using kernels::map_unary;

using namespace kernels::functors;

// ---- kernels ----
template <class F>
void unary_kernel(const Node&, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  visit_float(out.dtype, [&]<class T>() { map_unary(ctx.pool, in[0].as<T>(), out.as<T>(), out.numel(), F{}); });
}

void gelu_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  if (std::get<GeluAttr>(node.attrs).approximate == GeluApprox::tanh) {
    unary_kernel<GeluTanh>(node, in, out, ctx);
  } else {
    unary_kernel<GeluErf>(node, in, out, ctx);
  }
}

template <class F>
void binary_kernel(const Node&, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  visit_dtype(out.dtype, [&]<class T>() {
    const T* a = in[0].as<T>();
    const T* b = in[1].as<T>();
    T* y = out.as<T>();
    kernels::parallel_for_each_row<2>(ctx.pool, out.dims(), {in[0].dims(), in[1].dims()}, [&](const auto& at, const auto& step,
                                                                                               std::int64_t n) {
      map_binary(a + at[1], step[1], b + at[2], step[2], y + at[0], n, F{});
    });
  });
}

void where_kernel(const Node&, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  visit_dtype(in[0].dtype, [&]<class C>() {
    visit_dtype(out.dtype, [&]<class T>() {
      const C* c = in[0].as<C>();
      const T* a = in[1].as<T>();
      const T* b = in[2].as<T>();
      T* y = out.as<T>();
      kernels::for_each_row<3>(out.dims(), {in[0].dims(), in[1].dims(), in[2].dims()},
                               [&](const auto& at, const auto& step, std::int64_t n) {
                                 for (std::int64_t i = 0; i < n; ++i) {
                                   y[at[0] + i] = c[at[1] + i * step[1]] != C(0) ? a[at[2] + i * step[2]]
                                                                                : b[at[3] + i * step[3]];
                                 }
                               });
    });
  });
}

void cast_kernel(const Node&, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  visit_dtype(in[0].dtype, [&]<class S>() {
    visit_dtype(out.dtype, [&]<class T>() {
      const S* x = in[0].as<S>();
      T* y = out.as<T>();
      for (std::int64_t i = 0, n = out.numel(); i < n; ++i) y[i] = static_cast<T>(x[i]);
    });
  });
}

// ---- generated code: the same loops with their sizes and strides as constants ----
template <class F>
std::string functor() {
  if constexpr (requires { typename F::Comparison; }) {
    return fmt::format("xg::kernels::functors::Compare<xg::kernels::functors::{}>{{}}", F::Comparison::cpp_name);
  } else {
    return fmt::format("xg::kernels::functors::{}{{}}", F::cpp_name);
  }
}

template <class F>
std::string emit_unary(const EmitArgs& a) {
  return fmt::format("xg::kernels::map_unary({}.pool, {}, {}, {}, {});", a.context, a.inputs[0].pointer, a.output.pointer,
                     a.output.shape->numel(), functor<F>());
}

std::string emit_gelu(const EmitArgs& a) {
  if (std::get<GeluAttr>(a.node.attrs).approximate == GeluApprox::tanh) return emit_unary<GeluTanh>(a);
  return emit_unary<GeluErf>(a);
}

template <class F>
std::string emit_binary(const EmitArgs& a) {
  const auto rows = emit::rows_of<2>(a.output.shape->dims(), {a.inputs[0].shape->dims(), a.inputs[1].shape->dims()});
  const std::string f = functor<F>();
  const auto outer = emit::outer_strides(rows);
  if (outer && (*outer)[0] == rows[0].n && rows[0].step[0] == 1) {
    const auto& step = rows[0].step;
    if (rows.size() == 1) {
      return fmt::format("xg::kernels::map_binary({}.pool, {}, {}, {}, {}, {}, {}, {});", a.context, a.inputs[0].pointer,
                         step[1], a.inputs[1].pointer, step[2], a.output.pointer, rows[0].n, f);
    }
    return fmt::format("xg::kernels::map_binary_rows({}.pool, {}, {}, {}, {}, {}, {}, {}, {}, {}, {});", a.context, a.inputs[0].pointer,
                       (*outer)[1], step[1], a.inputs[1].pointer, (*outer)[2], step[2], a.output.pointer, rows.size(),
                       rows[0].n, f);
  }
  if (rows.size() > emit::kMaxStraightLineRows) return {};
  std::string code;
  for (const auto& row : rows) {
    code += fmt::format("xg::kernels::map_binary({}, {}, {}, {}, {}, {}, {});\n", emit::offset(a.inputs[0].pointer, row.start[1]),
                        row.step[1], emit::offset(a.inputs[1].pointer, row.start[2]), row.step[2],
                        emit::offset(a.output.pointer, row.start[0]), row.n, f);
  }
  return code;
}

// ---- gradient rules: built from ops, so they differentiate again ----
using Grads = std::vector<Var>;
Var x0(const VjpArgs& a) { return a.inputs[0]; }

Grads vjp_neg(const VjpArgs& a) { return {-a.grad}; }
Grads vjp_exp(const VjpArgs& a) { return {a.grad * a.output}; }
Grads vjp_log(const VjpArgs& a) { return {a.grad / x0(a)}; }
Grads vjp_sqrt(const VjpArgs& a) { return {a.grad / (a.output * 2.0)}; }
Grads vjp_rsqrt(const VjpArgs& a) { return {a.grad * (a.output * a.output * a.output) * -0.5}; }
Grads vjp_square(const VjpArgs& a) { return {a.grad * x0(a) * 2.0}; }
Grads vjp_tanh(const VjpArgs& a) { return {a.grad * (1.0 - square(a.output))}; }
Grads vjp_sigmoid(const VjpArgs& a) { return {a.grad * a.output * (1.0 - a.output)}; }
// From the output (y > 0 exactly where x > 0): the input need not outlive the forward pass, so the
// compiler may fuse the activation into the product that makes its input.
Grads vjp_relu(const VjpArgs& a) { return {a.grad * greater(a.output, detail::scalar_like(a.output, 0.0))}; }
Grads vjp_erf(const VjpArgs& a) {
  return {a.grad * exp(-square(x0(a))) * std::numbers::inv_sqrtpi * 2.0};
}
Grads vjp_gelu(const VjpArgs& a) {
  const Var x = x0(a);
  if (std::get<GeluAttr>(a.node.attrs).approximate == GeluApprox::tanh) {
    const Var t = tanh(kGeluTanhScale * (x + kGeluTanhCubic * x * x * x));
    const Var dinner = kGeluTanhScale * (1.0 + 3.0 * kGeluTanhCubic * square(x));
    return {a.grad * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - square(t)) * dinner)};
  }
  // Phi(x) + x phi(x)
  const Var cdf = 0.5 * (1.0 + erf(x * (std::numbers::sqrt2 / 2)));
  const Var pdf = exp(-0.5 * square(x)) * (std::numbers::inv_sqrtpi / std::numbers::sqrt2);
  return {a.grad * (cdf + x * pdf)};
}

Var input_shape_grad(Var g, const VjpArgs& a, int i) { return sum_to(g, a.inputs[static_cast<std::size_t>(i)].shape()); }
Grads vjp_add(const VjpArgs& a) { return {input_shape_grad(a.grad, a, 0), input_shape_grad(a.grad, a, 1)}; }
Grads vjp_sub(const VjpArgs& a) { return {input_shape_grad(a.grad, a, 0), input_shape_grad(-a.grad, a, 1)}; }
Grads vjp_mul(const VjpArgs& a) {
  return {input_shape_grad(a.grad * a.inputs[1], a, 0), input_shape_grad(a.grad * a.inputs[0], a, 1)};
}
Grads vjp_div(const VjpArgs& a) {
  return {input_shape_grad(a.grad / a.inputs[1], a, 0), input_shape_grad(-(a.grad * a.output) / a.inputs[1], a, 1)};
}
Grads vjp_where(const VjpArgs& a) {
  const Var zero = detail::scalar_like(a.grad, 0.0);
  return {Var{}, input_shape_grad(where(a.inputs[0], a.grad, zero), a, 1),
          input_shape_grad(where(a.inputs[0], zero, a.grad), a, 2)};
}
Grads vjp_cast(const VjpArgs& a) {
  if (!is_float(x0(a).dtype()) || !is_float(a.output.dtype())) return {Var{}};
  return {cast(a.grad, x0(a).dtype())};
}

// ---- builders ----
Var unary(const OpDef& op, Var x, Attrs attrs = {}) {
  detail::same_graph(op.name, {x});
  detail::require_float(op.name, x);
  return detail::add_node(op, {x}, std::move(attrs), x.dtype(), x.shape());
}

Var binary(const OpDef& op, Var a, Var b) {
  detail::same_graph(op.name, {a, b});
  detail::require_same_dtype(op.name, a, b);
  return detail::add_node(op, {a, b}, {}, a.dtype(), detail::broadcast_shapes(op.name, a, b));
}

}  // namespace

const OpDef op_neg{.name = "neg", .forward = unary_kernel<Neg>, .vjp = vjp_neg, .elementwise = true,
                       .emit = emit_unary<Neg>};
const OpDef op_exp{.name = "exp", .forward = unary_kernel<Exp>, .vjp = vjp_exp, .elementwise = true,
                       .emit = emit_unary<Exp>};
const OpDef op_log{.name = "log", .forward = unary_kernel<Log>, .vjp = vjp_log, .elementwise = true,
                       .emit = emit_unary<Log>};
const OpDef op_sqrt{.name = "sqrt", .forward = unary_kernel<Sqrt>, .vjp = vjp_sqrt, .elementwise = true,
                       .emit = emit_unary<Sqrt>};
const OpDef op_rsqrt{.name = "rsqrt", .forward = unary_kernel<Rsqrt>, .vjp = vjp_rsqrt, .elementwise = true,
                       .emit = emit_unary<Rsqrt>};
const OpDef op_square{.name = "square", .forward = unary_kernel<Square>, .vjp = vjp_square, .elementwise = true,
                       .emit = emit_unary<Square>};
const OpDef op_tanh{.name = "tanh", .forward = unary_kernel<Tanh>, .vjp = vjp_tanh, .elementwise = true,
                       .emit = emit_unary<Tanh>};
const OpDef op_sigmoid{.name = "sigmoid", .forward = unary_kernel<Sigmoid>, .vjp = vjp_sigmoid, .elementwise = true,
                       .emit = emit_unary<Sigmoid>};
const OpDef op_relu{.name = "relu", .forward = unary_kernel<Relu>, .vjp = vjp_relu, .elementwise = true,
                       .emit = emit_unary<Relu>};
const OpDef op_erf{.name = "erf", .forward = unary_kernel<Erf>, .vjp = vjp_erf, .elementwise = true,
                       .emit = emit_unary<Erf>};
const OpDef op_gelu{.name = "gelu", .forward = gelu_kernel, .vjp = vjp_gelu, .elementwise = true, .emit = emit_gelu};
const OpDef op_add{.name = "add", .forward = binary_kernel<Add>, .vjp = vjp_add, .elementwise = true,
                       .emit = emit_binary<Add>};
const OpDef op_sub{.name = "sub", .forward = binary_kernel<Sub>, .vjp = vjp_sub, .elementwise = true,
                       .emit = emit_binary<Sub>};
const OpDef op_mul{.name = "mul", .forward = binary_kernel<Mul>, .vjp = vjp_mul, .elementwise = true,
                       .emit = emit_binary<Mul>};
const OpDef op_div{.name = "div", .forward = binary_kernel<Div>, .vjp = vjp_div, .elementwise = true,
                       .emit = emit_binary<Div>};
const OpDef op_greater{.name = "greater", .forward = binary_kernel<Compare<Greater>>, .differentiable = false,
                         .elementwise = true, .emit = emit_binary<Compare<Greater>>};
const OpDef op_less{.name = "less", .forward = binary_kernel<Compare<Less>>, .differentiable = false,
                         .elementwise = true, .emit = emit_binary<Compare<Less>>};
const OpDef op_equal{.name = "equal", .forward = binary_kernel<Compare<Equal>>, .differentiable = false,
                         .elementwise = true, .emit = emit_binary<Compare<Equal>>};
const OpDef op_not_equal{.name = "not_equal", .forward = binary_kernel<Compare<NotEqual>>, .differentiable = false,
                         .elementwise = true, .emit = emit_binary<Compare<NotEqual>>};
const OpDef op_where{.name = "where", .forward = where_kernel, .vjp = vjp_where, .elementwise = true};
const OpDef op_cast{.name = "cast", .forward = cast_kernel, .vjp = vjp_cast};
const OpDef op_stop_gradient{.name = "stop_gradient", .forward = copy_forward, .differentiable = false, .view = whole_view};

Var neg(Var x) { return unary(op_neg, x); }
Var exp(Var x) { return unary(op_exp, x); }
Var log(Var x) { return unary(op_log, x); }
Var sqrt(Var x) { return unary(op_sqrt, x); }
Var rsqrt(Var x) { return unary(op_rsqrt, x); }
Var square(Var x) { return unary(op_square, x); }
Var tanh(Var x) { return unary(op_tanh, x); }
Var sigmoid(Var x) { return unary(op_sigmoid, x); }
Var relu(Var x) { return unary(op_relu, x); }
Var erf(Var x) { return unary(op_erf, x); }
Var gelu(Var x, GeluApprox approximate) { return unary(op_gelu, x, GeluAttr{approximate}); }

Var add(Var a, Var b) { return binary(op_add, a, b); }
Var sub(Var a, Var b) { return binary(op_sub, a, b); }
Var mul(Var a, Var b) { return binary(op_mul, a, b); }
Var div(Var a, Var b) {
  detail::same_graph("div", {a, b});
  detail::require_float("div", a);
  return binary(op_div, a, b);
}
Var greater(Var a, Var b) { return binary(op_greater, a, b); }
Var less(Var a, Var b) { return binary(op_less, a, b); }
Var equal(Var a, Var b) { return binary(op_equal, a, b); }
Var not_equal(Var a, Var b) { return binary(op_not_equal, a, b); }

Var where(Var cond, Var a, Var b) {
  detail::same_graph("where", {cond, a, b});
  detail::require_same_dtype("where", a, b);
  const Shape ab = detail::broadcast_shapes("where", a, b);
  const Shape shape = detail::broadcast_shapes("where", cond.shape(), ab, cond.describe(), "the values");
  return detail::add_node(op_where, {cond, a, b}, {}, a.dtype(), shape);
}

Var masked_fill(Var x, Var mask, double value) {
  return where(mask, detail::scalar_like(x, value), x);
}

Var operator-(Var x) { return neg(x); }
Var operator+(Var a, Var b) { return add(a, b); }
Var operator-(Var a, Var b) { return sub(a, b); }
Var operator*(Var a, Var b) { return mul(a, b); }
Var operator/(Var a, Var b) { return div(a, b); }
Var operator+(Var a, double b) { return add(a, detail::scalar_like(a, b)); }
Var operator-(Var a, double b) { return sub(a, detail::scalar_like(a, b)); }
Var operator*(Var a, double b) { return mul(a, detail::scalar_like(a, b)); }
Var operator/(Var a, double b) { return div(a, detail::scalar_like(a, b)); }
Var operator+(double a, Var b) { return add(detail::scalar_like(b, a), b); }
Var operator-(double a, Var b) { return sub(detail::scalar_like(b, a), b); }
Var operator*(double a, Var b) { return mul(detail::scalar_like(b, a), b); }
Var operator/(double a, Var b) { return div(detail::scalar_like(b, a), b); }

Var cast(Var x, DType dtype) {
  detail::same_graph("cast", {x});
  if (x.dtype() == dtype) return x;
  return detail::add_node(op_cast, {x}, {}, dtype, x.shape());
}

Var stop_gradient(Var x) {
  detail::same_graph("stop_gradient", {x});
  return detail::add_node(op_stop_gradient, {x}, {}, x.dtype(), x.shape());
}

}  // namespace xg
