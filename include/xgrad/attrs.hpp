#pragma once
// The attributes a node carries besides its inputs, dtype and shape. Each op reads one alternative.
#include <cstdint>
#include <variant>
#include <vector>

namespace xg {

/// Reductions (axes reduced, keepdims) and permute (axes = the permutation).
struct AxesAttr {
  std::vector<int> axes;
  bool keepdims = false;
  bool operator==(const AxesAttr&) const = default;
};

/// softmax, log_softmax, concat: one normalized axis.
struct AxisAttr {
  int axis = 0;
  bool operator==(const AxisAttr&) const = default;
};

/// slice and its gradient slice_scatter: elements start, start+step, ... < stop of `axis`,
/// whose full extent is `extent`.
struct SliceAttr {
  int axis = 0;
  std::int64_t start = 0, stop = 0, step = 1, extent = 0;
  bool operator==(const SliceAttr&) const = default;
};

struct MatmulAttr {
  bool transpose_a = false, transpose_b = false;
  bool operator==(const MatmulAttr&) const = default;
};

/// layer_norm and its gradient: normalize over the last `normalized_ndim` axes.
struct NormAttr {
  int normalized_ndim = 1;
  double eps = 1e-5;
  bool has_gamma = false, has_beta = false;
  bool operator==(const NormAttr&) const = default;
};

/// Ops that take or place one index per position along `axis` (pick, unpick, one_hot):
/// `depth` is the extent of that axis; positions whose index equals `ignore_index` are skipped.
struct IndexAttr {
  int axis = 0;
  std::int64_t depth = 0;
  std::int64_t ignore_index = INT64_MIN;
  bool operator==(const IndexAttr&) const = default;
};

enum class GeluApprox : std::uint8_t { none, tanh };
struct GeluAttr {
  GeluApprox approximate = GeluApprox::none;
  bool operator==(const GeluAttr&) const = default;
};

/// dropout_mask: keep probability 1-p, scaled by 1/(1-p); the stream is seed x run x element.
struct DropoutAttr {
  double p = 0.0;
  std::uint64_t seed = 0;
  bool operator==(const DropoutAttr&) const = default;
};

/// param: how its value is filled when it is created. Draws come from the graph's seeded generator.
struct Init {
  enum class Kind : std::uint8_t { constant, normal, uniform };
  Kind kind = Kind::constant;
  double a = 0.0, b = 0.0;  // constant: value a; normal: mean a, std b; uniform: [a, b)

  static Init zeros() { return {Kind::constant, 0.0, 0.0}; }
  static Init ones() { return {Kind::constant, 1.0, 0.0}; }
  static Init constant(double value) { return {Kind::constant, value, 0.0}; }
  static Init normal(double mean, double std) { return {Kind::normal, mean, std}; }
  static Init uniform(double low, double high) { return {Kind::uniform, low, high}; }
  bool operator==(const Init&) const = default;
};

/// scaled_dot_product_attention and its gradient: the logits' scale, dropout p on the probabilities
/// (with the stream seed of dropout_mask), whether a bias is an operand, and (gradient only) whether
/// the bias's gradient is wanted.
struct AttentionAttr {
  double scale = 1.0;
  double dropout = 0.0;
  std::uint64_t seed = 0;
  bool has_bias = false;
  bool bias_grad = false;
  bool causal = false;  // query i sees keys j <= i only (as a blocking bias above the diagonal would)
  /// q, k, v, the output and their gradients are (B, S, H, d), not (B, H, S, d): set by the
  /// compiler when the graph permuted the projections' output into heads and back
  /// (compiler/passes/sequence_major_attention.cpp), never by a builder.
  bool sequence_major = false;
  bool operator==(const AttentionAttr&) const = default;
};

/// The elementwise function a fused matrix product applies after its bias.
enum class EpilogueActivation : std::uint8_t { none, relu, gelu_erf, gelu_tanh };

/// fused_matmul, which only the compiler makes: a matrix product with a shared right operand
/// followed, element by element, by `+ bias` along the last axis (when `bias`), the activation,
/// `+ residual` of the output's shape (when `residual`), `* dropout_mask` of probability `dropout`
/// and stream `seed` at the element's flat position (when `dropout > 0`: dropout's gradient), and
/// `* (gate > 0)` for a `gate` of the output's shape (when `gated`: ReLU's gradient, from its
/// output). Operands: a, b, then bias, residual and gate.
struct EpilogueAttr {
  MatmulAttr product;
  bool bias = false;
  EpilogueActivation activation = EpilogueActivation::none;
  bool residual = false;
  double dropout = 0.0;
  std::uint64_t seed = 0;
  bool gated = false;
  bool operator==(const EpilogueAttr&) const = default;
};

/// The functions a fused elementwise program applies: each one an elementwise op of the graph, with
/// that op's own kernel functor (dropout_mask: the mask's value at the element's flat position).
enum class ElementwiseOp : std::uint8_t {
  neg, exp, log, sqrt, rsqrt, square, tanh, sigmoid, relu, erf, gelu_erf, gelu_tanh,
  add, sub, mul, div, greater, less, equal, not_equal, where, dropout_mask
};

/// One step of a fused elementwise program: `op` over slots a, b, c (-1: unused). Slots 0..k-1
/// are the node's k operands, slot k + i is the value of instruction i; the last one is the output.
struct ElementwiseInstruction {
  ElementwiseOp op = ElementwiseOp::neg;
  int a = -1, b = -1, c = -1;
  bool operator==(const ElementwiseInstruction&) const = default;
};

/// fused_elementwise, which only the compiler makes (compiler/passes/fuse_elementwise.cpp): a tree
/// of elementwise ops computed in one pass over the output, rows of `row_length` elements at a
/// time, along which every operand is either contiguous or one broadcast value. `dropout` and
/// `seed` belong to the program's dropout_mask instruction (at most one).
struct FusedElementwiseAttr {
  std::vector<ElementwiseInstruction> program;
  std::int64_t row_length = 1;
  double dropout = 0.0;
  std::uint64_t seed = 0;
  bool operator==(const FusedElementwiseAttr&) const = default;
};

/// sum_of_product, which only the compiler makes (compiler/passes/fuse_sum_of_products.cpp): the
/// sum over `sum`'s axes of a * b, two operands of one shape, each negated first where asked (the
/// loss mask's sum(-log p * mask)).
struct SumOfProductAttr {
  AxesAttr sum;
  bool negate_a = false, negate_b = false;
  bool operator==(const SumOfProductAttr&) const = default;
};

using Attrs = std::variant<std::monostate, AxesAttr, AxisAttr, SliceAttr, MatmulAttr, NormAttr,
                           IndexAttr, GeluAttr, DropoutAttr, AttentionAttr, Init, EpilogueAttr,
                           FusedElementwiseAttr, SumOfProductAttr>;

}  // namespace xg
