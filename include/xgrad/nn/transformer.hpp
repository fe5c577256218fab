#pragma once
// Transformer encoder and decoder layers and their stacks, each sub-layer wrapped in dropout,
// a residual connection and LayerNorm.
#include <cstdint>
#include <optional>
#include <string>

#include "xgrad/graph.hpp"
#include "xgrad/nn/feed_forward.hpp"

namespace xg::nn {

/// Where LayerNorm sits. post: x = LN(x + sublayer(x)) (the original Transformer);
/// pre: x = x + sublayer(LN(x)) (GPT-2 and most recent models; a stack then usually ends in a
/// final LayerNorm).
enum class NormStyle : std::uint8_t { post, pre };

struct LayerConfig {
  std::int64_t d_model = 512;
  std::int64_t heads = 8;
  std::int64_t d_ff = 2048;
  double dropout = 0.1;  // residual, feed-forward and attention-probability dropout
  NormStyle norm = NormStyle::post;
  Activation activation = Activation::relu;
  double eps = 1e-5;
  bool causal = false;  // self-attention sees no later position (the fused mask: no (S, S) bias built)
  std::optional<double> init_std = std::nullopt;  // every projection's weight from N(0, init_std), biases zero (GPT-2)
};

/// Self-attention then feed-forward. Parameters: `{name}.self_attn.*`, `{name}.linear1/2`,
/// `{name}.norm1/2`. `self_bias`: the additive mask of the self-attention (e.g. key padding).
Var encoder_layer(Var x, std::optional<Var> self_bias, const std::string& name, const LayerConfig& config);

/// Self-attention (causal with config.causal, or through self_bias), cross attention over `memory`,
/// feed-forward. Parameters:
/// `{name}.self_attn.*`, `{name}.cross_attn.*`, `{name}.linear1/2`, `{name}.norm1/2/3`.
Var decoder_layer(Var x, Var memory, std::optional<Var> self_bias, std::optional<Var> memory_bias,
                  const std::string& name, const LayerConfig& config);

struct StackConfig {
  LayerConfig layer;
  int layers = 6;
  bool final_norm = false;  // a LayerNorm `{name}.norm` after the last layer (usual with pre-LN)
};

/// `layers` encoder layers named `{name}.0`, `{name}.1`, ...
Var encoder(Var x, std::optional<Var> self_bias, const std::string& name, const StackConfig& config);
/// `layers` decoder layers named `{name}.0`, `{name}.1`, ...
Var decoder(Var x, Var memory, std::optional<Var> self_bias, std::optional<Var> memory_bias, const std::string& name,
            const StackConfig& config);

}  // namespace xg::nn
