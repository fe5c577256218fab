#pragma once
// What the three model families share: the width of their Transformer layers and how tokens become
// vectors. Shapes (batch, sequence lengths) are part of each model's config: the graph is static.
#include <cstdint>
#include <optional>
#include <string>

#include <xgrad/nn.hpp>

namespace xg::models {

enum class Positions : std::uint8_t { sinusoidal, learned };

struct ModelConfig {
  std::int64_t d_model = 64;
  std::int64_t heads = 4;
  std::int64_t d_ff = 256;
  std::int64_t max_len = 64;  // longest sequence the position table covers
  double dropout = 0.1;
  nn::NormStyle norm = nn::NormStyle::post;
  nn::Activation activation = nn::Activation::relu;
  Positions positions = Positions::sinusoidal;
  bool scale_embedding = true;  // token vectors times sqrt(d_model), as in the original Transformer
  /// Unset: PyTorch's defaults (nn.Linear's uniform weights and biases, N(0, 1) tables). Set: GPT-2's,
  /// every weight matrix and table (tokens, learned positions, heads) from N(0, init_std), biases zero.
  std::optional<double> init_std = std::nullopt;

  nn::StackConfig stack(int layers) const {
    return {{d_model, heads, d_ff, dropout, norm, activation, 1e-5, false, init_std}, layers, norm == nn::NormStyle::pre};
  }
};

/// Token embedding `{name}` plus positions (`{name}_pos` when learned), then dropout:
/// (B, S) tokens -> (B, S, d_model). `table` is the token table (shared when weights are tied).
Var embed_tokens(Var tokens, Var table, const std::string& name, const ModelConfig& config);

/// The loss mask (docs/design.md) over (B, S, V) logits: per-token cross-entropy, the sequence mask of lengths,
/// and sum(loss * mask) / sum(mask).
struct SequenceLoss {
  Var loss;       // (B, S)
  Var mask;       // (B, S)
  Var token_count;  // sum(mask): the objective is a mean over this many tokens (TrainerOptions::weight)
  Var objective;  // scalar
};
SequenceLoss sequence_loss(Var logits, Var labels, Var lengths);

/// Counts the scalars of every parameter of the graph.
std::int64_t parameter_count(Graph& g);

}  // namespace xg::models
