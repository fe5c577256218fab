#include "xgrad/nn/positional.hpp"

#include <array>
#include <cmath>

#include <fmt/format.h>

#include "util/checked.hpp"
#include "xgrad/format.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

Var sinusoidal_positions(Graph& g, std::int64_t max_len, std::int64_t dim) {
  if (max_len < 1 || dim < 1) {
    throw ValueError(fmt::format("sinusoidal_positions: max_len and dim must be positive, got {} and {}", max_len, dim));
  }
  checked::size(std::array{max_len, dim}, sizeof(double), "sinusoidal_positions");
  xt::xarray<double> table = xt::zeros<double>({static_cast<std::size_t>(max_len), static_cast<std::size_t>(dim)});
  for (std::int64_t p = 0; p < max_len; ++p) {
    for (std::int64_t i = 0; i < dim; ++i) {
      const double frequency = std::pow(10000.0, -static_cast<double>(i - i % 2) / static_cast<double>(dim));
      const double angle = static_cast<double>(p) * frequency;
      table(p, i) = i % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  }
  return g.constant(Tensor(std::move(table)).cast(g.float_type()), fmt::format("sinusoidal_positions_{}x{}", max_len, dim));
}

Var learned_positions(Graph& g, const std::string& name, std::int64_t max_len, std::int64_t dim,
                      std::optional<double> init_std) {
  const Scope scope = Scope::layer(g, name);
  return g.param(name + ".weight", {max_len, dim}, Init::normal(0.0, init_std.value_or(1.0)));
}

Var add_positions(Var x, Var table) {
  if (x.rank() < 2 || table.rank() != 2 || x.shape()[x.rank() - 1] != table.shape()[1]) {
    throw ShapeError(fmt::format("add_positions: x {} of shape {} needs (..., S, dim) and a table (max_len, dim); "
                                 "the table {} has shape {}",
                                 x.describe(), x.shape(), table.describe(), table.shape()));
  }
  const std::int64_t seq_len = x.shape()[x.rank() - 2];
  if (seq_len > table.shape()[0]) {
    throw ShapeError(fmt::format("add_positions: sequence length {} of {} exceeds the {} positions of {}", seq_len,
                                 x.describe(), table.shape()[0], table.describe()));
  }
  return x + (seq_len == table.shape()[0] ? table : slice(table, 0, 0, seq_len));
}

}  // namespace xg::nn
