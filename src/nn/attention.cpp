#include "xgrad/nn/attention.hpp"

#include <cmath>

#include <fmt/format.h>

#include "xgrad/format.hpp"
#include "xgrad/nn/linear.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

Var key_padding_bias(Var lengths, std::int64_t seq_len, DType dtype) {
  if (lengths.rank() != 1) {
    throw ShapeError(fmt::format("key_padding_bias: lengths {} must be (B), got shape {}", lengths.describe(), lengths.shape()));
  }
  const Var keep = sequence_mask(lengths, seq_len, dtype);
  return reshape((1.0 - keep) * kBlocked, {lengths.shape()[0], 1, 1, seq_len});
}

Var causal_bias(Graph& g, std::int64_t seq_len, DType dtype) {
  return (1.0 - causal_mask(g, seq_len, dtype)) * kBlocked;
}

namespace {

/// (B, S, D) -> (B, heads, S, D / heads)
Var split_heads(Var x, std::int64_t heads) {
  const Shape& s = x.shape();
  return permute(reshape(x, {s[0], s[1], heads, s[2] / heads}), {0, 2, 1, 3});
}

/// (B, heads, S, dh) -> (B, S, heads * dh)
Var merge_heads(Var x) {
  const Shape& s = x.shape();
  return reshape(permute(x, {0, 2, 1, 3}), {s[0], s[2], s[1] * s[3]});
}

}  // namespace

Var multi_head_attention(Var query, Var key_value, std::optional<Var> bias, const std::string& name,
                         const AttentionConfig& config) {
  if (query.rank() != 3 || key_value.rank() != 3 || query.shape()[0] != key_value.shape()[0] ||
      query.shape()[2] != key_value.shape()[2]) {
    throw ShapeError(fmt::format("attention '{}': query {} of shape {} and keys/values {} of shape {} must be (B, Sq, D) "
                                 "and (B, Sk, D)",
                                 name, query.describe(), query.shape(), key_value.describe(), key_value.shape()));
  }
  const std::int64_t d_model = query.shape()[2];
  if (config.heads < 1 || d_model % config.heads != 0) {
    throw ValueError(fmt::format("attention '{}': d_model {} is not divisible by {} heads", name, d_model, config.heads));
  }
  const Scope scope = Scope::layer(query.graph(), name);
  const Var q = split_heads(linear(query, name + ".q_proj", d_model, true, config.init_std), config.heads);
  const Var k = split_heads(linear(key_value, name + ".k_proj", d_model, true, config.init_std), config.heads);
  const Var v = split_heads(linear(key_value, name + ".v_proj", d_model, true, config.init_std), config.heads);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d_model / config.heads));
  const Var mixed = scaled_dot_product_attention(q, k, v, bias, scale, config.dropout, config.causal);  // (B, heads, Sq, dh)
  return linear(merge_heads(mixed), name + ".out_proj", d_model, true, config.init_std);
}

}  // namespace xg::nn
