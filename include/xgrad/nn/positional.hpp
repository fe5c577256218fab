#pragma once
// Position information added to token embeddings: fixed sinusoids or a learned table.
#include <cstdint>
#include <optional>
#include <string>

#include "xgrad/graph.hpp"

namespace xg::nn {

/// The fixed table of "Attention Is All You Need": PE(p, 2i) = sin(p / 10000^(2i/dim)),
/// PE(p, 2i+1) = cos(...), shape (max_len, dim), as a constant of the graph's float type.
Var sinusoidal_positions(Graph& g, std::int64_t max_len, std::int64_t dim);

/// A learned table `{name}.weight` of shape (max_len, dim), drawn from N(0, 1) like nn.Embedding, or
/// from N(0, init_std) when given.
Var learned_positions(Graph& g, const std::string& name, std::int64_t max_len, std::int64_t dim,
                      std::optional<double> init_std = std::nullopt);

/// x (..., S, dim) plus the first S rows of `table` (max_len, dim); S may not exceed max_len.
Var add_positions(Var x, Var table);

}  // namespace xg::nn
