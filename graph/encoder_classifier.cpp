#include "graph/encoder_classifier.hpp"

#include <xgrad/loss.hpp>
#include <xgrad/ops.hpp>

namespace xg::models {

EncoderClassifier encoder_classifier(Graph& g, const EncoderClassifierConfig& c) {
  const DType f = g.float_type();
  EncoderClassifier m;
  m.tokens = g.input("tokens", {c.batch, c.seq_len}, DType::i32);
  m.lengths = g.input("lengths", {c.batch}, DType::i32);
  m.labels = g.input("labels", {c.batch}, DType::i32);

  const Var table = nn::embedding_table(g, "tok_embed", c.vocab, c.model.d_model, c.model.init_std);
  const Var padding = [&] {
    const Scope scope(g, "mask");
    return nn::key_padding_bias(m.lengths, c.seq_len, f);
  }();
  const Var hidden = nn::encoder(embed_tokens(m.tokens, table, "tok_embed", c.model), padding, "encoder", c.model.stack(c.layers));
  const Var pooled = [&] {
    const Scope scope(g, "pool");
    const Var keep = reshape(sequence_mask(m.lengths, c.seq_len, f), {c.batch, c.seq_len, 1});
    return sum(hidden * keep, {1}) / sum(keep, {1});  // (B, d_model)
  }();
  const Var pooler = tanh(nn::linear(pooled, "pooler", c.model.d_model, true, c.model.init_std));
  m.logits = nn::linear(pooler, "classifier", c.classes, true, c.model.init_std);

  const Scope scope(g, "loss");
  CrossEntropyOptions o;
  o.reduction = Reduction::none;
  m.loss = cross_entropy(m.logits, m.labels, o);
  m.objective = mean(m.loss);
  return m;
}

}  // namespace xg::models
