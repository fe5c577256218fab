#include "xgrad/nn/feed_forward.hpp"

#include "xgrad/nn/linear.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

namespace {

Var activate(Var x, Activation activation) {
  switch (activation) {
    case Activation::relu: return relu(x);
    case Activation::gelu: return gelu(x);
    case Activation::gelu_tanh: return gelu(x, GeluApprox::tanh);
  }
  return x;
}

}  // namespace

Var feed_forward(Var x, const std::string& name, std::int64_t d_ff, Activation activation, double dropout_p,
                 std::optional<double> init_std) {
  const std::int64_t d_model = x.shape()[x.rank() - 1];
  const Scope scope = Scope::layer(x.graph(), name);  // the layer's own: linear1/2 sit beside the attention
  const Var hidden = activate(linear(x, name + ".linear1", d_ff, true, init_std), activation);
  return linear(dropout(hidden, dropout_p), name + ".linear2", d_model, true, init_std);
}

}  // namespace xg::nn
