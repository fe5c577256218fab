#include "xgrad/nn/norm.hpp"

#include <fmt/format.h>

#include "xgrad/format.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

Var layer_norm(Var x, const std::string& name, double eps) {
  if (x.rank() < 1) throw ShapeError(fmt::format("layer_norm '{}': input {} is a scalar", name, x.describe()));
  Graph& g = x.graph();
  const Scope scope = Scope::layer(g, name);
  const std::int64_t dim = x.shape()[x.rank() - 1];
  const Var weight = g.param(name + ".weight", {dim}, Init::ones(), x.dtype());
  const Var bias = g.param(name + ".bias", {dim}, Init::zeros(), x.dtype());
  return xg::layer_norm(x, 1, eps, weight, bias);
}

}  // namespace xg::nn
