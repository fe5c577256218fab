#pragma once
// LayerNorm with learned scale and shift, as PyTorch's nn.LayerNorm over the last axis.
#include <string>

#include "xgrad/graph.hpp"

namespace xg::nn {

/// Registers `{name}.weight` (ones) and `{name}.bias` (zeros) of shape (dim) = x's last extent.
Var layer_norm(Var x, const std::string& name, double eps = 1e-5);

}  // namespace xg::nn
