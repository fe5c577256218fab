#pragma once
// Decoder-only language model (GPT-like): token embedding plus positions, a stack of causal
// self-attention layers, and an output projection tied to the embedding or separate, trained with
// loss mask (docs/design.md) over the valid tokens.
#include <xgrad/graph.hpp>

#include "graph/model_config.hpp"

namespace xg::models {

struct DecoderLMConfig {
  ModelConfig model;
  std::int64_t vocab = 128;
  int layers = 2;
  bool tied_output = true;  // logits = h E^T with the embedding table E; else a separate lm_head
  std::int64_t batch = 8, seq_len = 64;
};

struct DecoderLM {
  Var tokens;   // (B, S) i32, padded after lengths
  Var lengths;  // (B) i32
  Var labels;   // (B, S) i32: the next token of each position; any class at padded positions
  Var logits;     // (B, S, vocab)
  Var loss;       // (B, S)
  Var mask;       // (B, S)
  Var token_count;  // sum(mask): what the objective is a mean over (TrainerOptions::weight)
  Var objective;  // sum(loss * mask) / sum(mask)
};

/// Parameters: tok_embed, layers.N.* (encoder-layer structure with a causal mask), lm_head when untied
/// (and layers.norm with pre-LN).
DecoderLM decoder_lm(Graph& g, const DecoderLMConfig& config);

}  // namespace xg::models
