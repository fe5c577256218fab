#pragma once
// Encoder-only classifier (BERT-like): token embedding plus positions, an encoder with a key
// padding mask, the mean of the valid positions (the sequence mask as pooling weights), a tanh
// pooler and a classification head.
#include <xgrad/graph.hpp>

#include "graph/model_config.hpp"

namespace xg::models {

struct EncoderClassifierConfig {
  ModelConfig model;
  std::int64_t vocab = 16;
  std::int64_t classes = 2;
  int layers = 2;
  std::int64_t batch = 32, seq_len = 32;
};

struct EncoderClassifier {
  Var tokens;   // (B, S) i32, padded after lengths
  Var lengths;  // (B) i32
  Var labels;   // (B) i32 in [0, classes)
  Var logits;     // (B, classes)
  Var loss;       // (B) cross-entropy per sequence
  Var objective;  // mean of loss
};

/// Parameters: tok_embed, encoder.N.*, pooler, classifier (and encoder.norm with pre-LN).
EncoderClassifier encoder_classifier(Graph& g, const EncoderClassifierConfig& config);

}  // namespace xg::models
