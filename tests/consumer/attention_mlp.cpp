#include "attention_mlp.hpp"

#include <xgrad/nn.hpp>
#include <xgrad/ops.hpp>

namespace consumer {

xg::ModelDefinition attention_mlp(xg::Graph& g) {
  const xg::Var x = g.input("features", {kBatch, kTokens, kFeatures});
  const xg::Var lengths = g.input("lengths", {kBatch}, xg::DType::i32);
  const xg::Var target = g.input("target", {kBatch, kTargets});
  const xg::Var h = xg::gelu(xg::nn::linear(x, "embed", kWidth));
  const xg::Var padding = xg::nn::key_padding_bias(lengths, kTokens, g.float_type());
  const xg::Var mixed = h + xg::nn::self_attention(h, padding, "mix", {.heads = kHeads, .dropout = 0.1});
  const xg::Var prediction = xg::nn::linear(xg::mean(mixed, {1}), "head", kTargets);
  const xg::Var residual = prediction - target;
  const xg::Var loss = xg::mean(xg::log(xg::square(residual) + 1.0));
  return {.outputs = {{"prediction", prediction}},
          .objective = loss,
          .optimizer = xg::optim::SGDOptions{.momentum = 0.9, .weight_decay = 1e-3, .nesterov = true},
          .decayed = xg::DecayedParameters::all,
          .clip_norm = std::nullopt,
          .description = "the consumer project's attention MLP"};
}

}  // namespace consumer
