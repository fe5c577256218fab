// softmax and log_softmax over one axis: max-subtracted, one pass per row.
#include <cmath>

#include "xgrad/kernels/broadcast.hpp"
#include "xgrad/kernels/softmax.hpp"
#include "ops/builder_util.hpp"
#include "ops/emit_util.hpp"
#include "xgrad/ops.hpp"

namespace xg {
namespace {

template <bool Log>
void softmax_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto split = kernels::split_at(in[0].dims(), std::get<AxisAttr>(node.attrs).axis);
  visit_float(out.dtype, [&]<class T>() {
    kernels::softmax_rows<Log>(ctx.pool, in[0].as<T>(), out.as<T>(), split.outer, split.extent, split.inner);
  });
}

template <bool Log>
std::string emit_softmax(const EmitArgs& a) {
  const auto split = kernels::split_at(a.inputs[0].shape->dims(), std::get<AxisAttr>(a.node.attrs).axis);
  return fmt::format("xg::kernels::softmax_rows<{}>({}.pool, {}, {}, {}, {}, {});", Log, a.context, a.inputs[0].pointer, a.output.pointer,
                     split.outer, split.extent, split.inner);
}

// softmax: y (g - sum(g y));  log_softmax: g - exp(y) sum(g). Both are ops, so they differentiate again.
std::vector<Var> vjp_softmax(const VjpArgs& a) {
  const int axis = std::get<AxisAttr>(a.node.attrs).axis;
  return {a.output * (a.grad - sum(a.grad * a.output, {axis}, true))};
}
std::vector<Var> vjp_log_softmax(const VjpArgs& a) {
  const int axis = std::get<AxisAttr>(a.node.attrs).axis;
  return {a.grad - exp(a.output) * sum(a.grad, {axis}, true)};
}

Var softmax_like(const OpDef& op, Var x, int axis) {
  detail::same_graph(op.name, {x});
  detail::require_float(op.name, x);
  axis = normalize_axis(axis, x.rank(), fmt::format("{} of {}", op.name, x.describe()));
  return detail::add_node(op, {x}, AxisAttr{axis}, x.dtype(), x.shape());
}

}  // namespace

const OpDef op_softmax{.name = "softmax", .forward = softmax_kernel<false>, .vjp = vjp_softmax, .elementwise = true,
                        .emit = emit_softmax<false>};
const OpDef op_log_softmax{.name = "log_softmax", .forward = softmax_kernel<true>, .vjp = vjp_log_softmax,
                            .elementwise = true, .emit = emit_softmax<true>};

Var softmax(Var x, int axis) { return softmax_like(op_softmax, x, axis); }
Var log_softmax(Var x, int axis) { return softmax_like(op_log_softmax, x, axis); }

}  // namespace xg
