// Fused scaled-dot-product attention (FlashAttention-2 on CPU): the builder, its forward and backward
// kernels and its gradient rule.
//
// Each pass writes one flat "record" and the values are zero-copy views of it:
//   forward record:  [ O (B, H, Sq, dv) | row max (B, H, Sq) | row sum (B, H, Sq) ]
//   row statistics:  [ D = rowsum(dO * O) | row max | row sum ], each (B, H, Sq)
//   backward record: [ dQ | dK | dV | dBias (only when wanted) ]
// Without dBias, the backward record may take the bytes of q, k and v where they die (one buffer
// each, of their parts' sizes): the planner then makes those three buffers one.
// The attention's value is O, a view of the forward record's prefix. Its gradient's first step
// reads O and dO once for the row statistics, so that the forward record dies before the backward
// pass proper: O(S) memory instead of the (B, H, Sq, Sk) probabilities of the unfused composition,
// and not even O beside the backward pass's own. The gradients are views
// (contiguous slices) of the backward record. Per-thread scratch is the kernels' workspace, placed
// by compile() for the call alone, so run() allocates nothing.
#include <array>
#include <cmath>

#include "xgrad/kernels/flash_attention.hpp"
#include "xgrad/kernels/parallel.hpp"
#include "ops/builder_util.hpp"
#include "xgrad/ops.hpp"

namespace xg {
namespace {

constexpr std::string_view kOp = "scaled_dot_product_attention";

/// The queries' rows alone (all the row statistics see), from the shape of q, O or dO: `dim` is
/// its last axis, whichever that is.
kernels::AttentionShape query_rows_shape(const Shape& rows, const AttentionAttr& attr) {
  if (attr.sequence_major) return {rows[0] * rows[2], rows[1], 0, 0, rows[3], rows[2], attr.causal, true};
  return {rows[0] * rows[1], rows[2], 0, 0, rows[3], rows[1], attr.causal, false};
}

kernels::AttentionShape attention_shape(const Shape& q, const Shape& k, const Shape& v, const AttentionAttr& attr) {
  kernels::AttentionShape s = query_rows_shape(q, attr);
  s.k_len = attr.sequence_major ? k[1] : k[2];
  s.qk_dim = q[3];
  s.v_dim = v[3];
  return s;
}

/// Calls work(first_head, last_head, slot) on disjoint head ranges, one per scratch slot of the
/// workspace (`slots` of them), spread over the pool. Heads are independent and each is computed
/// the same way in any slot, so the split changes no result.
template <class Work>
void split_heads(ThreadPool* pool, std::int64_t heads, std::int64_t slots, Work&& work) {
  if (slots <= 1) {
    work(std::int64_t{0}, heads, std::int64_t{0});
    return;
  }
  pool->parallel_for(slots, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t w = first; w < last; ++w) work(heads * w / slots, heads * (w + 1) / slots, w);
  });
}

/// Threads worth giving an attention call: one per head at most, and none beyond the first when the
/// problem is too small to split.
std::int64_t attention_slots(const kernels::AttentionShape& s, int threads) {
  const std::int64_t elements = s.heads * s.q_len * s.k_len;
  return elements >= kernels::kParallelElements ? std::clamp<std::int64_t>(threads, 1, s.heads) : 1;
}

/// Offsets (in elements) of the parts of both records.
struct RecordLayout {
  std::int64_t out = 0, row_max = 0, row_sum = 0, forward_total = 0;
  std::int64_t d_q = 0, d_k = 0, d_v = 0, d_bias = 0, backward_total = 0;
};

RecordLayout record_layout(const kernels::AttentionShape& s, std::int64_t bias_grad_numel) {
  RecordLayout r;
  r.row_max = r.out + s.heads * s.q_len * s.v_dim;
  r.row_sum = r.row_max + s.heads * s.q_len;
  r.forward_total = r.row_sum + s.heads * s.q_len;
  r.d_k = r.d_q + s.heads * s.q_len * s.qk_dim;
  r.d_v = r.d_k + s.heads * s.k_len * s.qk_dim;
  r.d_bias = r.d_v + s.heads * s.k_len * s.v_dim;
  r.backward_total = r.d_bias + bias_grad_numel;
  return r;
}

/// Scratch elements per slot of one pass.
std::int64_t slot_scratch(const Node& node, const kernels::AttentionShape& s) {
  const auto& attr = std::get<AttentionAttr>(node.attrs);
  return node.op == &op_attention ? kernels::attention_forward_scratch(s)
                                  : kernels::attention_backward_scratch(s, attr.dropout > 0.0);
}

kernels::AttentionShape attention_shape_of(const Node& node, std::span<const Node> nodes) {
  const auto shape = [&](std::size_t k) -> const Shape& { return nodes[static_cast<std::size_t>(node.inputs[k])].shape; };
  return attention_shape(shape(0), shape(1), shape(2), std::get<AttentionAttr>(node.attrs));
}

std::size_t attention_workspace(const Node& node, std::span<const Node> nodes, int threads) {
  const kernels::AttentionShape s = attention_shape_of(node, nodes);
  const auto& attr = std::get<AttentionAttr>(node.attrs);
  // The bias gradient sums over heads that share a bias element: one slot then, in head order.
  const std::int64_t slots = node.op == &op_attention_backward && attr.bias_grad ? 1 : attention_slots(s, threads);
  return static_cast<std::size_t>(slots * slot_scratch(node, s)) * size_of(node.dtype);
}

/// The slots a call's workspace holds (what attention_workspace sized it for).
std::int64_t slots_in(const RunContext& ctx, const Node& node, const kernels::AttentionShape& s) {
  const auto per_slot = static_cast<std::size_t>(slot_scratch(node, s)) * size_of(node.dtype);
  return per_slot == 0 ? 1 : std::max<std::int64_t>(1, static_cast<std::int64_t>(ctx.workspace_bytes / per_slot));
}

/// The bias (or its gradient) of this shape seen as (B, H, Sq, Sk): stride 0 along broadcast axes.
template <class T>
kernels::BiasView<T> bias_view(T* data, const Shape& bias) {
  std::array<std::int64_t, 4> strides{0, 0, 0, 0};
  std::int64_t stride = 1;
  for (int axis = bias.rank() - 1, slot = 3; axis >= 0; --axis, --slot) {
    strides[static_cast<std::size_t>(slot)] = bias[axis] == 1 ? 0 : stride;
    stride *= bias[axis];
  }
  return {data, strides[0], strides[1], strides[2], strides[3]};
}

kernels::DropoutStream dropout_stream(const AttentionAttr& attr, const RunContext& ctx) {
  return {ctx.training ? attr.dropout : 0.0, attr.seed, ctx.run_index};
}

// in: q, k, v[, bias]
void attention_forward_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto& attr = std::get<AttentionAttr>(node.attrs);
  const kernels::AttentionShape s = attention_shape(*in[0].shape, *in[1].shape, *in[2].shape, attr);
  const RecordLayout layout = record_layout(s, 0);
  visit_float(out.dtype, [&]<class T>() {
    T* record = out.as<T>();
    T* scratch = static_cast<T*>(ctx.workspace);
    const auto bias = attr.has_bias ? bias_view(in[3].as<T>(), *in[3].shape) : kernels::BiasView<T>{};
    const std::int64_t per_slot = kernels::attention_forward_scratch(s);
    split_heads(ctx.pool, s.heads, slots_in(ctx, node, s), [&](std::int64_t first, std::int64_t last, std::int64_t slot) {
      kernels::flash_attention_forward<T>(s, in[0].as<T>(), in[1].as<T>(), in[2].as<T>(), bias, static_cast<T>(attr.scale),
                                          dropout_stream(attr, ctx), record + layout.out, record + layout.row_max,
                                          record + layout.row_sum, scratch + slot * per_slot, first, last);
    });
  });
}

// in: forward record, dO; out: the row statistics
void attention_row_stats_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const kernels::AttentionShape s = query_rows_shape(*in[1].shape, std::get<AttentionAttr>(node.attrs));
  const RecordLayout layout = record_layout(s, 0);
  const std::int64_t rows = s.heads * s.q_len;
  visit_float(out.dtype, [&]<class T>() {
    const T* forward = in[0].as<T>();
    T* stats = out.as<T>();
    std::copy(forward + layout.row_max, forward + layout.forward_total, stats + rows);  // row max, then row sum
    const auto dots = [&](std::int64_t first, std::int64_t last) {
      kernels::attention_row_dots<T>(s, forward + layout.out, in[1].as<T>(), stats, first, last);
    };
    if (kernels::worth_splitting(ctx.pool, rows * s.v_dim)) ctx.pool->parallel_for(s.heads, dots);
    else dots(0, s.heads);
  });
}

// in: q, k, v[, bias], row statistics, dO
void attention_backward_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto& attr = std::get<AttentionAttr>(node.attrs);
  const kernels::AttentionShape s = attention_shape(*in[0].shape, *in[1].shape, *in[2].shape, attr);
  const std::size_t stats_at = attr.has_bias ? 4 : 3;
  const std::int64_t bias_grad_numel = attr.bias_grad ? in[3].numel() : 0;
  const RecordLayout layout = record_layout(s, bias_grad_numel);
  const std::int64_t rows = s.heads * s.q_len;
  visit_float(out.dtype, [&]<class T>() {
    T* grads = out.as<T>();
    T* scratch = static_cast<T*>(ctx.workspace);
    const T* stats = in[stats_at].as<T>();
    const auto bias = attr.has_bias ? bias_view(in[3].as<T>(), *in[3].shape) : kernels::BiasView<T>{};
    const auto d_bias = attr.bias_grad ? bias_view(grads + layout.d_bias, *in[3].shape) : kernels::BiasView<T>{};
    std::fill(grads + layout.d_bias, grads + layout.d_bias + bias_grad_numel, T(0));
    const std::int64_t per_slot = kernels::attention_backward_scratch(s, attr.dropout > 0.0);
    split_heads(ctx.pool, s.heads, slots_in(ctx, node, s), [&](std::int64_t first, std::int64_t last, std::int64_t slot) {
                  kernels::flash_attention_backward<T>(
                      s, in[0].as<T>(), in[1].as<T>(), in[2].as<T>(), bias, static_cast<T>(attr.scale), dropout_stream(attr, ctx),
                      stats, stats + rows, stats + 2 * rows, in[stats_at + 1].as<T>(),
                      grads + layout.d_q, grads + layout.d_k, grads + layout.d_v, d_bias,
                      scratch + slot * per_slot, first, last);
    });
  });
}

/// Whether a gradient can reach x: it is, or depends through differentiable ops on, a float parameter
/// or input. A bias built from lengths and constants (the masks) cannot, and then costs nothing.
bool may_need_gradient(Var x) {
  Graph& g = x.graph();
  std::vector<bool> seen(static_cast<std::size_t>(x.id() + 1), false);
  std::vector<int> pending{x.id()};
  while (!pending.empty()) {
    const int id = pending.back();
    pending.pop_back();
    if (seen[static_cast<std::size_t>(id)]) continue;
    seen[static_cast<std::size_t>(id)] = true;
    const Node& n = g.node(id);
    if (!is_float(n.dtype)) continue;
    if (n.op == &op_param || n.op == &op_input) return true;
    if (!n.op->differentiable) continue;  // masks, comparisons, stop_gradient, constants
    for (int in : n.inputs) pending.push_back(in);
  }
  return false;
}

// inputs: forward record, q, k, v[, bias]
std::vector<Var> vjp_attention(const VjpArgs& a) {
  AttentionAttr attr = std::get<AttentionAttr>(a.node.attrs);
  const Var record = a.inputs[0], q = a.inputs[1], k = a.inputs[2], v = a.inputs[3];
  std::vector<Var> operands{q, k, v};
  std::int64_t bias_grad_numel = 0;
  if (attr.has_bias) {
    const Var bias = a.inputs[4];
    operands.push_back(bias);
    attr.bias_grad = may_need_gradient(bias);
    if (attr.bias_grad) bias_grad_numel = bias.shape().numel();
  }
  const kernels::AttentionShape s = attention_shape(q.shape(), k.shape(), v.shape(), attr);
  operands.push_back(a.graph.add_node(op_attention_row_stats, {record, a.grad}, attr, q.dtype(), Shape{3 * s.heads * s.q_len}));
  operands.push_back(a.grad);
  const RecordLayout layout = record_layout(s, bias_grad_numel);
  const Var grads = a.graph.add_node(op_attention_backward, operands, attr, q.dtype(), Shape{layout.backward_total});
  std::vector<Var> result{Var{}, detail::record_part(grads, layout.d_q, q.shape()), detail::record_part(grads, layout.d_k, k.shape()),
                          detail::record_part(grads, layout.d_v, v.shape())};
  if (attr.has_bias) {
    result.push_back(attr.bias_grad ? detail::record_part(grads, layout.d_bias, a.inputs[4].shape()) : Var{});
  }
  return result;
}

/// dQ, dK and dV may take the bytes of q, k and v (flash_attention_backward writes each after its
/// last read); a record with a bias gradient has a fourth part, and then none does.
std::vector<InPlacePart> attention_gradient_parts(const Node& node, std::span<const Node> nodes) {
  if (std::get<AttentionAttr>(node.attrs).bias_grad) return {};
  const RecordLayout layout = record_layout(attention_shape_of(node, nodes), 0);
  return {{0, layout.d_q}, {1, layout.d_k}, {2, layout.d_v}};
}

/// The products of the unfused composition this op replaces: q k^T and P v forward; dP, dV, dQ and
/// dK backward. The backward pass's recomputation of q k^T is not counted, so that the figure stays
/// the model's work and rates compare with the unfused path's.
std::uint64_t attention_flops(const Node& n, std::span<const Node> nodes) {
  const kernels::AttentionShape s = attention_shape_of(n, nodes);
  const auto scores = static_cast<std::uint64_t>(s.heads * s.q_len * s.k_len);
  const auto qk = static_cast<std::uint64_t>(s.qk_dim), pv = static_cast<std::uint64_t>(s.v_dim);
  return n.op == &op_attention ? 2 * scores * (qk + pv) : 2 * scores * (2 * qk + 2 * pv);
}

void require_rank4(Var x, std::string_view role, std::string_view layout) {
  if (x.rank() != 4) {
    throw ShapeError(fmt::format("{}: {} {} has shape {}, expected {}", kOp, role, x.describe(), x.shape(), layout));
  }
}

}  // namespace

// The forward record's own gradient is never asked for: the rule sits on the output view, whose
// other inputs are q, k, v and the bias.
const OpDef op_attention{.name = "attention", .forward = attention_forward_kernel, .matmul_flops = attention_flops,
                         .workspace = attention_workspace};
const OpDef op_attention_output{.name = "attention_output", .forward = copy_forward, .vjp = vjp_attention, .view = whole_view};
// Fused backward kernels without rules of their own: attention is differentiable once.
const OpDef op_attention_row_stats{.name = "attention_row_stats", .forward = attention_row_stats_kernel};
const OpDef op_attention_backward{.name = "attention_backward", .forward = attention_backward_kernel,
                                  .matmul_flops = attention_flops, .workspace = attention_workspace,
                                  .in_place_parts = attention_gradient_parts};

Var scaled_dot_product_attention(Var q, Var k, Var v, std::optional<Var> bias, double scale, double dropout_p,
                                 bool causal) {
  Graph& g = detail::same_graph(kOp, {q, k, v});
  detail::require_float(kOp, q);
  detail::require_same_dtype(kOp, q, k);
  detail::require_same_dtype(kOp, q, v);
  require_rank4(q, "queries", "(B, H, Sq, d)");
  require_rank4(k, "keys", "(B, H, Sk, d)");
  require_rank4(v, "values", "(B, H, Sk, dv)");
  const Shape& qs = q.shape();
  const Shape& ks = k.shape();
  const Shape& vs = v.shape();
  if (ks[0] != qs[0] || ks[1] != qs[1] || ks[3] != qs[3]) {
    throw ShapeError(fmt::format("{}: keys {} of shape {} do not fit queries {} of shape {}: expected ({}, {}, Sk, {})",
                                 kOp, k.describe(), ks, q.describe(), qs, qs[0], qs[1], qs[3]));
  }
  if (vs[0] != qs[0] || vs[1] != qs[1] || vs[2] != ks[2]) {
    throw ShapeError(fmt::format("{}: values {} of shape {} do not fit keys {} of shape {}: expected ({}, {}, {}, dv)",
                                 kOp, v.describe(), vs, k.describe(), ks, qs[0], qs[1], ks[2]));
  }
  if (!std::isfinite(scale)) throw ValueError(fmt::format("{} of {}: scale must be finite, got {}", kOp, q.describe(), scale));
  if (!(dropout_p >= 0.0 && dropout_p < 1.0)) {
    throw ValueError(fmt::format("{} of {}: dropout p must be in [0, 1), got {}", kOp, q.describe(), dropout_p));
  }
  const Shape scores{qs[0], qs[1], qs[2], ks[2]};
  std::vector<Var> operands{q, k, v};
  if (bias) {
    detail::same_graph(kOp, {q, *bias});
    detail::require_same_dtype(kOp, q, *bias);
    const Shape& bs = bias->shape();
    bool fits = bs.rank() <= 4;
    for (int axis = 0; fits && axis < bs.rank(); ++axis) {
      const std::int64_t want = scores[4 - bs.rank() + axis];
      fits = bs[axis] == want || bs[axis] == 1;
    }
    if (!fits) {
      throw ShapeError(fmt::format("{}: bias {} of shape {} does not broadcast to the scores' shape (B, H, Sq, Sk) = {}",
                                   kOp, bias->describe(), bs, scores));
    }
    operands.push_back(*bias);
  }
  // A seed only when dropout is on, as dropout() draws one: graphs keep their parameter streams.
  const AttentionAttr attr{scale, dropout_p, dropout_p > 0.0 ? g.next_seed() : 0, bias.has_value(), false, causal};
  const RecordLayout layout = record_layout(attention_shape(qs, ks, vs, attr), 0);
  const Var record = detail::add_node(op_attention, operands, attr, q.dtype(), Shape{layout.forward_total});
  operands.insert(operands.begin(), record);
  return detail::add_node(op_attention_output, operands, attr, q.dtype(), Shape{qs[0], qs[1], qs[2], vs[3]});
}

}  // namespace xg
