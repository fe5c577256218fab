#pragma once
// A model of the consumer project's own, none of xgrad's families: a per-token MLP, one small
// self-attention block with dropout and key padding, mean pooling, and a Cauchy (log(1 + r^2)) loss
// against real-valued targets. The project compiles it at build time (attention_mlp_generator.cpp)
// and builds the same graph in-process (compiled_model.cpp) to check the two against each other.
#include <cstdint>

#include <xgrad/model_definition.hpp>

namespace consumer {

inline constexpr std::int64_t kBatch = 4, kTokens = 6, kFeatures = 5, kWidth = 16, kHeads = 2, kTargets = 3;

/// The graph, with SGD (momentum and Nesterov, weight decay on every parameter) and no clipping:
/// choices the library's own families never make, so the generated update is not the default one.
xg::ModelDefinition attention_mlp(xg::Graph& g);

}  // namespace consumer
