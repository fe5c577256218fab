#include "graph/model_config.hpp"

#include <xgrad/loss.hpp>
#include <xgrad/ops.hpp>

namespace xg::models {

Var embed_tokens(Var tokens, Var table, const std::string& name, const ModelConfig& config) {
  Graph& g = tokens.graph();
  // A learned table is a layer of its own (`{name}_pos`); the rest is the embedding's scope.
  const Var learned = config.positions == Positions::learned
                          ? nn::learned_positions(g, name + "_pos", config.max_len, config.d_model, config.init_std)
                          : Var{};
  const Scope scope = Scope::layer(g, name);
  const Var positions = learned.valid() ? learned : nn::sinusoidal_positions(g, config.max_len, config.d_model);
  return dropout(nn::add_positions(nn::embed(table, tokens, config.scale_embedding), positions), config.dropout);
}

SequenceLoss sequence_loss(Var logits, Var labels, Var lengths) {
  const Scope scope(logits.graph(), "loss");
  CrossEntropyOptions o;
  o.class_axis = -1;
  o.reduction = Reduction::none;
  SequenceLoss l;
  l.loss = cross_entropy(logits, labels, o);
  l.mask = sequence_mask(lengths, logits.shape()[1], logits.dtype());
  l.token_count = sum(l.mask);
  l.objective = sum(l.loss * l.mask) / l.token_count;
  return l;
}

std::int64_t parameter_count(Graph& g) {
  std::int64_t count = 0;
  for (Var p : g.params()) count += p.shape().numel();
  return count;
}

}  // namespace xg::models
