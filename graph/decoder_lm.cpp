#include "graph/decoder_lm.hpp"

#include <xgrad/loss.hpp>
#include <xgrad/ops.hpp>

namespace xg::models {

DecoderLM decoder_lm(Graph& g, const DecoderLMConfig& c) {
  const DType f = g.float_type();
  DecoderLM m;
  m.tokens = g.input("tokens", {c.batch, c.seq_len}, DType::i32);
  m.lengths = g.input("lengths", {c.batch}, DType::i32);
  m.labels = g.input("labels", {c.batch, c.seq_len}, DType::i32);

  const Var self_bias = nn::causal_bias(g, c.seq_len, f) + nn::key_padding_bias(m.lengths, c.seq_len, f);
  const Var table = nn::embedding_table(g, "tok_embed", c.vocab, c.model.d_model);
  const Var hidden =
      nn::encoder(embed_tokens(m.tokens, table, "tok_embed", c.model), self_bias, "layers", c.model.stack(c.layers));
  m.logits = c.tied_output ? matmul(hidden, table, false, true) : nn::linear(hidden, "lm_head", c.vocab, false);

  CrossEntropyOptions o;
  o.class_axis = -1;
  o.reduction = Reduction::none;
  m.loss = cross_entropy(m.logits, m.labels, o);
  m.mask = sequence_mask(m.lengths, c.seq_len, f);
  m.objective = sum(m.loss * m.mask) / sum(m.mask);
  return m;
}

}  // namespace xg::models
