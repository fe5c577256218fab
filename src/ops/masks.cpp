// Masks: sequence_mask from lengths, the causal (lower-triangular) mask, and dropout's random mask.
#include <array>

#include <xtensor/xbuilder.hpp>

#include "xgrad/kernels/dropout.hpp"
#include "ops/builder_util.hpp"
#include "ops/emit_util.hpp"
#include "util/checked.hpp"
#include "xgrad/ops.hpp"

namespace xg {
namespace {

void sequence_mask_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext&) {
  const std::int64_t seq_len = out.dims().back();
  const auto* lengths = in[0].as<std::int32_t>();
  visit_dtype(out.dtype, [&]<class T>() {
    T* y = out.as<T>();
    for (std::int64_t p = 0, n = in[0].numel(); p < n; ++p) {
      const std::int64_t length = lengths[p];
      if (length < 0 || length > seq_len) {
        throw IndexError(fmt::format("{}: length {} at flat position {} of lengths {} is outside [0, {}]",
                                     node.op_name(), length, p, *in[0].shape, seq_len));
      }
      for (std::int64_t t = 0; t < seq_len; ++t) y[p * seq_len + t] = t < length ? T(1) : T(0);
    }
  });
}

void dropout_mask_kernel(const Node& node, std::span<const Buffer>, const Buffer& out, const RunContext& ctx) {
  const auto& attr = std::get<DropoutAttr>(node.attrs);
  visit_float(out.dtype, [&]<class T>() {
    kernels::dropout_mask(out.as<T>(), out.numel(), attr.p, attr.seed, ctx.run_index, ctx.training);
  });
}

// The seed is the generated model's own (drawn from its seed as the graph drew this one).
std::string emit_dropout_mask(const EmitArgs& a) {
  return fmt::format("xg::kernels::dropout_mask({}, {}, {:a}, {}, {}.run_index, {}.training);", a.output.pointer,
                     a.output.shape->numel(), std::get<DropoutAttr>(a.node.attrs).p, a.seed, a.context, a.context);
}

}  // namespace

const OpDef op_sequence_mask{.name = "sequence_mask", .forward = sequence_mask_kernel, .differentiable = false};
const OpDef op_dropout_mask{.name = "dropout_mask", .forward = dropout_mask_kernel, .differentiable = false,
                             .emit = emit_dropout_mask};

Var sequence_mask(Var lengths, std::int64_t seq_len, DType dtype) {
  detail::same_graph("sequence_mask", {lengths});
  detail::require_int("sequence_mask", lengths);
  if (seq_len < 0) throw ValueError(fmt::format("sequence_mask: negative sequence length {}", seq_len));
  std::vector<std::int64_t> dims = lengths.shape().dims();
  dims.push_back(seq_len);
  return detail::add_node(op_sequence_mask, {lengths}, {}, dtype, Shape(std::move(dims)));
}

Var causal_mask(Graph& g, std::int64_t seq_len, DType dtype) {
  if (seq_len < 0) throw ValueError(fmt::format("causal_mask: negative sequence length {}", seq_len));
  checked::size(std::array{seq_len, seq_len}, static_cast<std::int64_t>(size_of(dtype)), "causal_mask");
  const auto n = static_cast<std::size_t>(seq_len);
  return g.constant(visit_dtype(dtype, [&]<class T>() {
                      return Tensor(xt::xarray<T>(xt::cast<T>(xt::tril(xt::ones<T>({n, n})))));
                    }),
                    fmt::format("causal_mask_{}", seq_len));
}

Var dropout(Var x, double p) {
  detail::same_graph("dropout", {x});
  detail::require_float("dropout", x);
  if (!(p >= 0.0 && p < 1.0)) throw ValueError(fmt::format("dropout of {}: p must be in [0, 1), got {}", x.describe(), p));
  if (p == 0.0) return x;
  Graph& g = x.graph();
  const Var mask = g.add_node(op_dropout_mask, {}, DropoutAttr{p, g.next_seed()}, x.dtype(), x.shape());
  return x * mask;
}

}  // namespace xg
