#include "xgrad/nn/linear.hpp"

#include <cmath>

#include <fmt/format.h>

#include "xgrad/format.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

Var linear(Var x, const std::string& name, std::int64_t out_features, bool bias, std::optional<double> init_std) {
  if (x.rank() < 1) throw ShapeError(fmt::format("linear '{}': input {} is a scalar", name, x.describe()));
  if (out_features < 1) throw ValueError(fmt::format("linear '{}': out_features must be positive, got {}", name, out_features));
  Graph& g = x.graph();
  const Scope scope = Scope::layer(g, name);
  const std::int64_t in_features = x.shape()[x.rank() - 1];
  const double bound = in_features > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features)) : 0.0;
  const Init weight_init = init_std ? Init::normal(0.0, *init_std) : Init::uniform(-bound, bound);
  const Init bias_init = init_std ? Init::zeros() : Init::uniform(-bound, bound);
  const Var weight = g.param(name + ".weight", {out_features, in_features}, weight_init, x.dtype());
  // Rows of x as one (N, in) matrix: forward and both gradients are then single GEMMs.
  std::vector<std::int64_t> out_dims = x.shape().dims();
  out_dims.back() = out_features;
  Var y = matmul(reshape(x, {-1, in_features}), weight, false, true);
  if (bias) y = y + g.param(name + ".bias", {out_features}, bias_init, x.dtype());
  return reshape(y, Shape(std::move(out_dims)));
}

}  // namespace xg::nn
