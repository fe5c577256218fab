#include "graph/seq2seq.hpp"

#include <xgrad/ops.hpp>

namespace xg::models {

Seq2Seq seq2seq(Graph& g, const Seq2SeqConfig& c) {
  const DType f = g.float_type();
  Seq2Seq m;
  m.src_tokens = g.input("src_tokens", {c.batch, c.src_len}, DType::i32);
  m.src_lengths = g.input("src_lengths", {c.batch}, DType::i32);
  m.tgt_tokens = g.input("tgt_tokens", {c.batch, c.tgt_len}, DType::i32);
  m.tgt_lengths = g.input("tgt_lengths", {c.batch}, DType::i32);
  m.labels = g.input("labels", {c.batch, c.tgt_len}, DType::i32);

  const Var src_padding = [&] {
    const Scope scope(g, "src_mask");
    return nn::key_padding_bias(m.src_lengths, c.src_len, f);
  }();
  const Var tgt_self = [&] {  // causality is the decoder's own mask
    const Scope scope(g, "tgt_mask");
    return nn::key_padding_bias(m.tgt_lengths, c.tgt_len, f);
  }();

  const Var src_table = nn::embedding_table(g, "src_embed", c.src_vocab, c.model.d_model, c.model.init_std);
  const Var memory = nn::encoder(embed_tokens(m.src_tokens, src_table, "src_embed", c.model), src_padding, "encoder",
                                 c.model.stack(c.encoder_layers));
  const Var tgt_table = nn::embedding_table(g, "tgt_embed", c.tgt_vocab, c.model.d_model, c.model.init_std);
  nn::StackConfig decoder_stack = c.model.stack(c.decoder_layers);
  decoder_stack.layer.causal = true;
  const Var hidden = nn::decoder(embed_tokens(m.tgt_tokens, tgt_table, "tgt_embed", c.model), memory, tgt_self,
                                 src_padding, "decoder", decoder_stack);
  m.logits = nn::linear(hidden, "output_proj", c.tgt_vocab, true, c.model.init_std);

  const SequenceLoss l = sequence_loss(m.logits, m.labels, m.tgt_lengths);
  m.loss = l.loss;
  m.mask = l.mask;
  m.token_count = l.token_count;
  m.objective = l.objective;
  return m;
}

}  // namespace xg::models
