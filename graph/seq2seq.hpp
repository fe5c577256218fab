#pragma once
// Encoder-decoder Transformer (machine-translation-like): source and target embeddings, an encoder,
// a decoder with causal self-attention and cross attention over the encoder's memory, and an output
// projection, trained with the loss mask (docs/design.md) on the target.
#include <xgrad/graph.hpp>

#include "graph/model_config.hpp"

namespace xg::models {

struct Seq2SeqConfig {
  ModelConfig model;
  std::int64_t src_vocab = 16, tgt_vocab = 16;
  int encoder_layers = 2, decoder_layers = 2;
  std::int64_t batch = 32, src_len = 16, tgt_len = 16;
};

struct Seq2Seq {
  // inputs (i32)
  Var src_tokens;   // (B, S_src), padded after src_lengths
  Var src_lengths;  // (B)
  Var tgt_tokens;   // (B, S_tgt): the decoder's input, usually BOS + target[:-1]
  Var tgt_lengths;  // (B)
  Var labels;       // (B, S_tgt): the target; any class in [0, tgt_vocab) at padded positions
  // outputs
  Var logits;     // (B, S_tgt, tgt_vocab)
  Var loss;       // (B, S_tgt) per-token cross-entropy
  Var mask;       // (B, S_tgt) 1 for t < tgt_length
  Var token_count;  // sum(mask): what the objective is a mean over (TrainerOptions::weight)
  Var objective;  // sum(loss * mask) / sum(mask)
};

/// Adds the model to g. Parameters: src_embed, tgt_embed, encoder.N.*, decoder.N.*, output_proj
/// (and encoder.norm / decoder.norm with pre-LN).
Seq2Seq seq2seq(Graph& g, const Seq2SeqConfig& config);

}  // namespace xg::models
