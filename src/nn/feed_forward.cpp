#include "xgrad/nn/feed_forward.hpp"

#include "xgrad/nn/linear.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

Var feed_forward(Var x, const std::string& name, std::int64_t d_ff, Activation activation, double dropout_p) {
  const std::int64_t d_model = x.shape()[x.rank() - 1];
  Var hidden = linear(x, name + ".linear1", d_ff);
  hidden = activation == Activation::relu ? relu(hidden) : gelu(hidden);
  return linear(dropout(hidden, dropout_p), name + ".linear2", d_model);
}

}  // namespace xg::nn
