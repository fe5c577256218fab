#include "xgrad/nn/embedding.hpp"

#include <cmath>

#include "xgrad/ops.hpp"

namespace xg::nn {

Var embedding_table(Graph& g, const std::string& name, std::int64_t vocab, std::int64_t dim,
                    std::optional<double> init_std) {
  const Scope scope = Scope::layer(g, name);
  return g.param(name + ".weight", {vocab, dim}, Init::normal(0.0, init_std.value_or(1.0)));
}

Var embed(Var table, Var tokens, bool scale_by_sqrt_dim) {
  const Var rows = embedding(table, tokens);
  if (!scale_by_sqrt_dim) return rows;
  return rows * std::sqrt(static_cast<double>(table.shape()[table.rank() - 1]));
}

}  // namespace xg::nn
