#pragma once
// The position-wise feed-forward block of a Transformer layer.
#include <cstdint>
#include <optional>
#include <string>

#include "xgrad/graph.hpp"

namespace xg::nn {

/// gelu is the exact (erf) GELU; gelu_tanh its tanh approximation (GPT-2, PyTorch's approximate="tanh").
enum class Activation : std::uint8_t { relu, gelu, gelu_tanh };

/// linear2(dropout(activation(linear1(x)))): `{name}.linear1` (D -> d_ff) and `{name}.linear2`
/// (d_ff -> D), named as in PyTorch's nn.TransformerEncoderLayer; `init_std` as in linear().
Var feed_forward(Var x, const std::string& name, std::int64_t d_ff, Activation activation, double dropout,
                 std::optional<double> init_std = std::nullopt);

}  // namespace xg::nn
