#pragma once
// Multi-head attention and the additive masks it takes.
//
// Masks are additive biases broadcastable to the scores (B, heads, S_query, S_key): 0 where a
// query may look, a large negative number where it may not. They add up, so a causal and a padding
// bias combine with `+`.
#include <cstdint>
#include <optional>
#include <string>

#include "xgrad/graph.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

/// What a blocked score gets added: large enough that exp() underflows to exactly 0 after the
/// softmax's max subtraction, finite so that a row with every key blocked gives no NaN.
inline constexpr double kBlocked = kBlockedScore;

/// (B, 1, 1, S): 0 for key positions t < lengths[b], kBlocked for the padding after them.
Var key_padding_bias(Var lengths, std::int64_t seq_len, DType dtype);
/// (S, S): 0 where key <= query, kBlocked above the diagonal (a position sees no later one).
Var causal_bias(Graph& g, std::int64_t seq_len, DType dtype);

struct AttentionConfig {
  std::int64_t heads = 1;
  double dropout = 0.0;  // on the attention probabilities, in training mode
  bool causal = false;   // a query sees no later key (the fused op's mask: no (S, S) bias stored)
  std::optional<double> init_std = std::nullopt;  // the projections' initialisation, as in linear()
};

/// Multi-head scaled dot-product attention of `query` (B, Sq, D) over `key_value` (B, Sk, D):
/// projections `{name}.q_proj`, `k_proj`, `v_proj`, `out_proj` (each D -> D with bias), heads
/// split by reshape + transpose, softmax(Q K^T / sqrt(D / heads) + bias) V, heads merged again.
/// D must be divisible by heads. Returns (B, Sq, D).
Var multi_head_attention(Var query, Var key_value, std::optional<Var> bias, const std::string& name,
                         const AttentionConfig& config);

/// Self-attention: queries, keys and values from x.
inline Var self_attention(Var x, std::optional<Var> bias, const std::string& name, const AttentionConfig& config) {
  return multi_head_attention(x, x, bias, name, config);
}

/// Cross attention: queries from x, keys and values from the encoder's memory.
inline Var cross_attention(Var x, Var memory, std::optional<Var> memory_bias, const std::string& name,
                           const AttentionConfig& config) {
  return multi_head_attention(x, memory, memory_bias, name, config);
}

}  // namespace xg::nn
