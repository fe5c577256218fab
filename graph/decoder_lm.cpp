#include "graph/decoder_lm.hpp"

#include <xgrad/ops.hpp>

namespace xg::models {

DecoderLM decoder_lm(Graph& g, const DecoderLMConfig& c) {
  const DType f = g.float_type();
  DecoderLM m;
  m.tokens = g.input("tokens", {c.batch, c.seq_len}, DType::i32);
  m.lengths = g.input("lengths", {c.batch}, DType::i32);
  m.labels = g.input("labels", {c.batch, c.seq_len}, DType::i32);

  // Causality is the attention's own mask: only the (B, 1, 1, S) padding bias is built.
  const Var self_bias = [&] {
    const Scope scope(g, "mask");
    return nn::key_padding_bias(m.lengths, c.seq_len, f);
  }();
  nn::StackConfig stack = c.model.stack(c.layers);
  stack.layer.causal = true;
  const Var table = nn::embedding_table(g, "tok_embed", c.vocab, c.model.d_model, c.model.init_std);
  const Var hidden =
      nn::encoder(embed_tokens(m.tokens, table, "tok_embed", c.model), self_bias, "layers", stack);
  m.logits = [&] {
    if (!c.tied_output) return nn::linear(hidden, "lm_head", c.vocab, false, c.model.init_std);
    const Scope scope(g, "lm_head");  // tied to tok_embed: no parameter of its own
    return matmul(hidden, table, false, true);
  }();

  const SequenceLoss l = sequence_loss(m.logits, m.labels, m.lengths);
  m.loss = l.loss;
  m.mask = l.mask;
  m.token_count = l.token_count;
  m.objective = l.objective;
  return m;
}

}  // namespace xg::models
