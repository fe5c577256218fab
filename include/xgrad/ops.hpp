#pragma once
// Builder functions for every op. Each checks its inputs and infers the output's shape and dtype at
// once, throwing ShapeError / DTypeError / ValueError that name the op, the nodes and the shapes.
// Binary elementwise ops broadcast like NumPy; both operands must have the same dtype.
#include <optional>
#include <vector>

#include "xgrad/graph.hpp"

namespace xg {

// ---- elementwise, unary (floating-point) ----
Var neg(Var x);
Var exp(Var x);
Var log(Var x);
Var sqrt(Var x);
Var rsqrt(Var x);
Var square(Var x);
Var tanh(Var x);
Var sigmoid(Var x);
Var relu(Var x);
Var erf(Var x);
Var gelu(Var x, GeluApprox approximate = GeluApprox::none);

// ---- elementwise, binary (broadcasting) ----
Var add(Var a, Var b);
Var sub(Var a, Var b);
Var mul(Var a, Var b);
Var div(Var a, Var b);
/// Comparisons give 1 where true and 0 elsewhere, in the operands' dtype; they have no gradient.
Var greater(Var a, Var b);
Var less(Var a, Var b);
Var equal(Var a, Var b);
Var not_equal(Var a, Var b);
/// Elementwise choice: a where cond is non-zero, else b. cond may be any dtype; all three broadcast.
Var where(Var cond, Var a, Var b);
/// x with `value` wherever mask is non-zero (PyTorch's masked_fill).
Var masked_fill(Var x, Var mask, double value);

Var operator-(Var x);
Var operator+(Var a, Var b);
Var operator-(Var a, Var b);
Var operator*(Var a, Var b);
Var operator/(Var a, Var b);
Var operator+(Var a, double b);
Var operator-(Var a, double b);
Var operator*(Var a, double b);
Var operator/(Var a, double b);
Var operator+(double a, Var b);
Var operator-(double a, Var b);
Var operator*(double a, Var b);
Var operator/(double a, Var b);

/// Converts dtype; the gradient flows back between float types, not from or to i32.
Var cast(Var x, DType dtype);
/// Identity whose gradient is zero.
Var stop_gradient(Var x);

// ---- reductions; empty `axes` means every axis ----
Var sum(Var x, std::vector<int> axes = {}, bool keepdims = false);
Var mean(Var x, std::vector<int> axes = {}, bool keepdims = false);
/// Maximum over axes; the gradient is shared equally by tied maxima.
Var max(Var x, std::vector<int> axes = {}, bool keepdims = false);
/// Sums g over the axes along which `shape` was broadcast to g's shape (the gradient of broadcast_to).
Var sum_to(Var g, const Shape& shape);

// ---- shape ----
/// One dimension may be -1 and is inferred.
Var reshape(Var x, Shape shape);
Var permute(Var x, std::vector<int> perm);
/// Swaps two axes (by default the last two).
Var transpose(Var x, int axis_a = -2, int axis_b = -1);
Var broadcast_to(Var x, Shape shape);
/// Elements start, start+step, ... below stop along axis; negative start/stop count from the end.
Var slice(Var x, int axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1);
Var concat(const std::vector<Var>& xs, int axis);
Var squeeze(Var x, int axis);
Var unsqueeze(Var x, int axis);

// ---- linear algebra ----
/// Batched matrix product over the last two axes, with NumPy broadcasting of the batch axes;
/// the transpose flags use a (or b) with its last two axes swapped. 1-d operands are promoted as
/// in numpy.matmul.
Var matmul(Var a, Var b, bool transpose_a = false, bool transpose_b = false);

// ---- normalisation ----
Var softmax(Var x, int axis = -1);
Var log_softmax(Var x, int axis = -1);
/// Normalizes over the last `normalized_ndim` axes, then scales by gamma and shifts by beta
/// (each of the normalized shape) when given.
Var layer_norm(Var x, int normalized_ndim = 1, double eps = 1e-5, std::optional<Var> gamma = {},
               std::optional<Var> beta = {});

// ---- indexing ----
/// Rows of `table` (V, ...) chosen by the integer `indices`: shape indices.shape + table.shape[1:].
/// An index outside [0, V) raises IndexError when the Program runs.
Var embedding(Var table, Var indices);
/// x[..., index, ...] along `axis` for every position of `index` (x's shape without `axis`);
/// positions whose index is ignore_index give 0. An index outside [0, extent) raises IndexError.
Var pick(Var x, Var index, int axis, std::optional<std::int64_t> ignore_index = {});
/// The adjoint of pick: zeros of x's shape with g placed at the picked positions.
Var unpick(Var g, Var index, int axis, std::int64_t depth, std::optional<std::int64_t> ignore_index = {});
/// The adjoint of embedding: sums the rows of g into a (rows, ...) table at `indices`.
Var embedding_grad(Var g, Var indices, std::int64_t rows);
/// The adjoint of slice: zeros of extent `extent` along axis with g placed at the sliced positions.
Var slice_scatter(Var g, const SliceAttr& where);
Var one_hot(Var indices, std::int64_t depth, DType dtype = DType::f32);

// ---- masks and dropout ----
/// (S, S) lower-triangular ones (position t sees positions <= t), as a constant.
Var causal_mask(Graph& g, std::int64_t seq_len, DType dtype);
/// lengths.shape + (S): 1 where t < length, else 0. A length outside [0, S] raises IndexError.
Var sequence_mask(Var lengths, std::int64_t seq_len, DType dtype);
/// Zeroes each element with probability p and scales the rest by 1/(1-p) while the Program is in
/// training mode; identity in evaluation mode. Seeded from the graph; a new mask every run.
Var dropout(Var x, double p);

// ---- attention ----
/// What an additive attention mask adds to a blocked score: exp() of it underflows to exactly 0
/// after the softmax's max subtraction, and it is finite, so a row with every key blocked gives no NaN.
inline constexpr double kBlockedScore = -1e9;

/// softmax(q k^T * scale + bias) with dropout p on the probabilities (training mode only, the
/// stream of dropout()), then @ v, fused: q (B, H, Sq, d), k (B, H, Sk, d), v (B, H, Sk, dv) give
/// (B, H, Sq, dv). The additive bias broadcasts to (B, H, Sq, Sk) ((B, 1, 1, Sk) key padding, ...);
/// `causal` adds kBlockedScore to every key j > query i (top-left aligned, as an (Sq, Sk) causal
/// bias would, without one being stored). The (Sq, Sk) probabilities are never stored: memory grows
/// linearly in the sequence lengths. Differentiable once (to q, k, v and the bias), like layer_norm.
Var scaled_dot_product_attention(Var q, Var k, Var v, std::optional<Var> bias, double scale, double dropout_p = 0.0,
                                 bool causal = false);

}  // namespace xg
