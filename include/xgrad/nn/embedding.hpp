#pragma once
// Token embedding tables, as PyTorch's nn.Embedding.
#include <cstdint>
#include <optional>
#include <string>

#include "xgrad/graph.hpp"

namespace xg::nn {

/// Registers `{name}.weight` of shape (vocab, dim), drawn from N(0, 1) as PyTorch does, or from
/// N(0, init_std) when given (GPT-2: 0.02).
Var embedding_table(Graph& g, const std::string& name, std::int64_t vocab, std::int64_t dim,
                    std::optional<double> init_std = std::nullopt);

/// The rows of `table` at `tokens` (tokens.shape + (dim)), optionally times sqrt(dim) as in the
/// original Transformer. A token outside [0, vocab) raises IndexError when the Program runs.
Var embed(Var table, Var tokens, bool scale_by_sqrt_dim = false);

}  // namespace xg::nn
