#pragma once
// Fully connected layer, as PyTorch's nn.Linear.
#include <cstdint>
#include <optional>
#include <string>

#include "xgrad/graph.hpp"

namespace xg::nn {

/// y = x W^T + b over the last axis of x. Registers `{name}.weight` of shape (out, in) and, with
/// bias, `{name}.bias` of shape (out), both drawn from U(-1/sqrt(in), 1/sqrt(in)) as PyTorch does;
/// with `init_std`, GPT-2's initialisation instead: the weight from N(0, init_std), the bias zeros.
Var linear(Var x, const std::string& name, std::int64_t out_features, bool bias = true,
           std::optional<double> init_std = std::nullopt);

}  // namespace xg::nn
