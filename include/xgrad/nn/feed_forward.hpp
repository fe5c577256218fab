#pragma once
// The position-wise feed-forward block of a Transformer layer.
#include <cstdint>
#include <string>

#include "xgrad/graph.hpp"

namespace xg::nn {

enum class Activation : std::uint8_t { relu, gelu };

/// linear2(dropout(activation(linear1(x)))): `{name}.linear1` (D -> d_ff) and `{name}.linear2`
/// (d_ff -> D), named as in PyTorch's nn.TransformerEncoderLayer.
Var feed_forward(Var x, const std::string& name, std::int64_t d_ff, Activation activation, double dropout);

}  // namespace xg::nn
