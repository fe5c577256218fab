#pragma once
// The op table. One OpDef per op, defined next to its shape rule, kernel dispatch and gradient rule
// in src/ops/<family>.cpp. A Node points at its OpDef; there is no central switch.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/thread_pool.hpp"

namespace xg {

/// What a kernel needs from the run besides its operands.
struct RunContext {
  std::uint64_t run_index = 0;
  bool training = false;
  ThreadPool* pool = nullptr;  // kernels may split their work across it; null: the calling thread only
  void* workspace = nullptr;   // the bytes OpDef::workspace asked for, this call's alone
  std::size_t workspace_bytes = 0;
};

/// A value as a kernel sees it: contiguous row-major data of the node's shape.
struct Buffer {
  void* data = nullptr;
  const Shape* shape = nullptr;
  DType dtype = DType::f32;

  template <class T>
  T* as() const { return static_cast<T*>(data); }
  std::int64_t numel() const { return shape->numel(); }
  std::span<const std::int64_t> dims() const { return shape->dims(); }
};

/// Called only for outputs with at least one element (compile() schedules no empty value), so a
/// kernel never sees an empty output; its operands may still be empty (a sum over an empty axis).
using ForwardFn = void (*)(const Node& node, std::span<const Buffer> in, const Buffer& out,
                           const RunContext& ctx);

struct VjpArgs {
  Graph& graph;
  const Node& node;           // a copy: the graph grows while the rule runs
  std::vector<Var> inputs;
  Var output;
  Var grad;                   // d objective / d output
};
/// One gradient per input; an invalid Var means none (zero).
using VjpFn = std::vector<Var> (*)(const VjpArgs& args);

/// One kernel call as the code generator sees it: C++ expressions for the typed data pointers of
/// the operands and the output, whose shapes are constants of the build.
struct EmitOperand {
  std::string pointer;
  const Shape* shape = nullptr;
  DType dtype = DType::f32;
};
struct EmitArgs {
  const Node& node;
  std::span<const EmitOperand> inputs;
  const EmitOperand& output;
  std::string_view context;  // a `const xg::RunContext&` expression
  std::string_view seed;     // dropout_mask: the expression of its seed, drawn when the model is made
};
/// The call specialised to its constant shapes (C++ statements calling the same kernel code as
/// `forward`, so that results agree bit for bit), or an empty string to call `forward` itself.
using EmitFn = std::string (*)(const EmitArgs& args);

/// The matrix-product FLOPs (2 m n k per product) of one call; `nodes` resolves node.inputs.
using MatmulFlopsFn = std::uint64_t (*)(const Node& node, std::span<const Node> nodes);

/// Scratch bytes one call needs for `slots` threads working at once (at least 1): compile() places
/// them in the arena for that step alone, so run() allocates nothing. `nodes` resolves node.inputs.
using WorkspaceFn = std::size_t (*)(const Node& node, std::span<const Node> nodes, int slots);

/// For an op that reads one operand element by element, each before it writes that element of its
/// output (a product's epilogue operand): that operand's index, whose bytes the output may take
/// when the operand dies there, or -1 for none at this node.
using InPlaceOperandFn = int (*)(const Node& node, std::span<const Node> nodes);

/// One part of a record-valued op's output that is written only after the kernel has read the
/// matching operand for the last time (attention's dQ, dK, dV after q, k, v): operand `operand`'s
/// bytes may become the part that starts at element `offset`.
struct InPlacePart {
  int operand = 0;
  std::int64_t offset = 0;
};
/// The parts, in the order of their offsets; empty for none at this node.
using InPlacePartsFn = std::vector<InPlacePart> (*)(const Node& node, std::span<const Node> nodes);

/// For ops whose value may be a contiguous range of their first operand's bytes (reshape, a slice
/// of leading axes): the element offset of that range, or -1 when this node must be computed.
using ViewFn = std::int64_t (*)(const Node& node, const Node& input);
/// The whole operand, reinterpreted.
inline std::int64_t whole_view(const Node&, const Node&) { return 0; }

struct OpDef {
  std::string_view name;
  ForwardFn forward = nullptr;  // null for inputs, parameters and constants
  VjpFn vjp = nullptr;          // null on a differentiable op: no gradient rule (GradientError)
  bool differentiable = true;   // false: its gradient is zero by definition (masks, comparisons)
  bool elementwise = false;     // its output may take the bytes of an operand that dies there
  ViewFn view = nullptr;        // may be a view of its first operand (then `forward` is the copy)
  EmitFn emit = nullptr;        // null: generated code calls `forward`
  MatmulFlopsFn matmul_flops = nullptr;  // for ops built on matrix products (Program::matmul_flops)
  WorkspaceFn workspace = nullptr;       // null: no scratch
  InPlaceOperandFn in_place_operand = nullptr;  // null: none (or, when `elementwise`, any)
  InPlacePartsFn in_place_parts = nullptr;      // null: none
};

/// The seed of a node's random stream, when its attributes carry one (dropout masks, attention with
/// dropout): its value depends on the run, so it is never computed ahead of one. The gradient of a
/// fused op repeats its forward's seed.
inline std::optional<std::uint64_t> stream_seed(const Attrs& attrs) {
  if (const auto* d = std::get_if<DropoutAttr>(&attrs)) return d->seed;
  if (const auto* a = std::get_if<AttentionAttr>(&attrs); a != nullptr && a->dropout > 0.0) return a->seed;
  if (const auto* f = std::get_if<FusedElementwiseAttr>(&attrs); f != nullptr && f->dropout > 0.0) return f->seed;
  if (const auto* e = std::get_if<EpilogueAttr>(&attrs); e != nullptr && e->dropout > 0.0) return e->seed;
  return std::nullopt;
}

/// Copies the first input to the output (reshape and other viewing ops when they cannot view).
void copy_forward(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx);

// leaves (graph.cpp)
extern const OpDef op_input, op_param, op_constant;
// elementwise.cpp
extern const OpDef op_neg, op_exp, op_log, op_sqrt, op_rsqrt, op_square, op_tanh, op_sigmoid, op_relu,
    op_erf, op_gelu, op_add, op_sub, op_mul, op_div, op_greater, op_less, op_equal, op_not_equal,
    op_where, op_cast, op_stop_gradient;
// reduce.cpp
extern const OpDef op_sum, op_max;
// reduce.cpp: made by the compiler only (compiler/passes)
extern const OpDef op_sum_of_product;
// shape.cpp
extern const OpDef op_reshape, op_permute, op_broadcast_to, op_slice, op_slice_scatter, op_concat;
// matmul.cpp
extern const OpDef op_matmul;
// fused_matmul.cpp: made by the compiler only (compiler/passes)
extern const OpDef op_fused_matmul;
// fused_elementwise.cpp: made by the compiler only (compiler/passes)
extern const OpDef op_fused_elementwise;
// softmax.cpp
extern const OpDef op_softmax, op_log_softmax;
// layer_norm.cpp
extern const OpDef op_layer_norm, op_layer_norm_grad;
// indexing.cpp
extern const OpDef op_embedding, op_embedding_grad, op_pick, op_unpick, op_one_hot;
// masks.cpp
extern const OpDef op_sequence_mask, op_dropout_mask;
// attention.cpp
extern const OpDef op_attention, op_attention_output, op_attention_row_stats, op_attention_backward;

}  // namespace xg
