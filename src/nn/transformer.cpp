#include "xgrad/nn/transformer.hpp"

#include <fmt/format.h>

#include "xgrad/nn/attention.hpp"
#include "xgrad/format.hpp"
#include "xgrad/nn/norm.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

namespace {

/// The residual wrapper around one sub-layer, post-LN or pre-LN.
template <class Sublayer>
Var residual(Var x, const std::string& norm_name, const LayerConfig& config, Sublayer&& sublayer) {
  if (config.norm == NormStyle::pre) return x + dropout(sublayer(layer_norm(x, norm_name, config.eps)), config.dropout);
  return layer_norm(x + dropout(sublayer(x), config.dropout), norm_name, config.eps);
}

AttentionConfig self_attention_config(const LayerConfig& config) {
  return {config.heads, config.dropout, config.causal, config.init_std};
}
AttentionConfig cross_attention_config(const LayerConfig& config) {
  return {config.heads, config.dropout, false, config.init_std};
}
Var layer_feed_forward(Var h, const std::string& name, const LayerConfig& config) {
  return feed_forward(h, name, config.d_ff, config.activation, config.dropout, config.init_std);
}

void check_width(Var x, const std::string& name, const LayerConfig& config) {
  if (x.rank() != 3 || x.shape()[2] != config.d_model) {
    throw ShapeError(fmt::format("transformer layer '{}': input {} has shape {}, expected (B, S, {})", name, x.describe(),
                                 x.shape(), config.d_model));
  }
}

}  // namespace

Var encoder_layer(Var x, std::optional<Var> self_bias, const std::string& name, const LayerConfig& config) {
  check_width(x, name, config);
  const Scope scope = Scope::layer(x.graph(), name);
  x = residual(x, name + ".norm1", config,
               [&](Var h) { return self_attention(h, self_bias, name + ".self_attn", self_attention_config(config)); });
  return residual(x, name + ".norm2", config,
                  [&](Var h) { return layer_feed_forward(h, name, config); });
}

Var decoder_layer(Var x, Var memory, std::optional<Var> self_bias, std::optional<Var> memory_bias,
                  const std::string& name, const LayerConfig& config) {
  check_width(x, name, config);
  const Scope scope = Scope::layer(x.graph(), name);
  x = residual(x, name + ".norm1", config,
               [&](Var h) { return self_attention(h, self_bias, name + ".self_attn", self_attention_config(config)); });
  x = residual(x, name + ".norm2", config, [&](Var h) {
    return cross_attention(h, memory, memory_bias, name + ".cross_attn", cross_attention_config(config));
  });
  return residual(x, name + ".norm3", config,
                  [&](Var h) { return layer_feed_forward(h, name, config); });
}

Var encoder(Var x, std::optional<Var> self_bias, const std::string& name, const StackConfig& config) {
  const Scope scope = Scope::layer(x.graph(), name);
  for (int i = 0; i < config.layers; ++i) x = encoder_layer(x, self_bias, fmt::format("{}.{}", name, i), config.layer);
  return config.final_norm ? layer_norm(x, name + ".norm", config.layer.eps) : x;
}

Var decoder(Var x, Var memory, std::optional<Var> self_bias, std::optional<Var> memory_bias, const std::string& name,
            const StackConfig& config) {
  const Scope scope = Scope::layer(x.graph(), name);
  for (int i = 0; i < config.layers; ++i) {
    x = decoder_layer(x, memory, self_bias, memory_bias, fmt::format("{}.{}", name, i), config.layer);
  }
  return config.final_norm ? layer_norm(x, name + ".norm", config.layer.eps) : x;
}

}  // namespace xg::nn
