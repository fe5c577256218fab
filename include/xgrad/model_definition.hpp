#pragma once
// A model as build-time compilation takes it: the values its forward pass computes, the objective its
// training step minimises, and the update that step applies. A user's model source returns one from
// xg::define_model (model_generator.hpp); generate_cpp (codegen.hpp) turns it into a class.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/optim.hpp"

namespace xg {

/// Whose weight decay an optimizer's weight_decay option is.
enum class DecayedParameters : std::uint8_t {
  by_default,  // the parameters optim::decayed_by_default picks (weight matrices, embeddings), as optim::adamw_factory
  all,         // every parameter, as an optimizer made over graph.params() without groups
};

struct ModelDefinition {
  /// forward(): the values computed in evaluation mode, each read through an accessor of that name.
  std::vector<std::pair<std::string, Var>> outputs;
  /// train_step(): a scalar, minimised over every parameter of the graph.
  Var objective;
  /// train_step()'s update: SGD, Adam or AdamW (optim::adamw()). These options are the generated
  /// constructor's defaults; the kind is fixed in the code.
  optim::OptimizerOptions optimizer = optim::adamw();
  DecayedParameters decayed = DecayedParameters::by_default;
  /// Global-norm clipping before the update, or none: the constructor's default.
  std::optional<double> clip_norm = 1.0;
  /// What the model is: a comment in the code and the class's `description`; empty: the class name.
  std::string description;
};

}  // namespace xg
