#pragma once
// Build-time compilation: the pipeline compile() runs in-process (autodiff, schedule, liveness,
// memory plan) written out as C++ in which every shape, stride and arena offset is a constant.
// xgrad-codegen (graph/) runs it during the build; graph/meson.build lists the models.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/optim.hpp"

namespace xg {

enum class DecayedParameters : std::uint8_t { by_default, all };

struct CodegenSpec {
  std::string class_name;      // a C++ identifier, e.g. "GptTiny"; the class goes in xg::generated
  std::string header_include;  // how the generated source includes its header, e.g. "gpt_tiny.hpp"
  std::string description;     // what graph and config it is: a comment and the `description` member
  /// forward(): the values computed in evaluation mode, each read through an accessor of that name.
  std::vector<std::pair<std::string, Var>> outputs;
  /// train_step(): minimised over every parameter of the graph.
  Var objective;
  /// train_step()'s update: SGD, Adam or AdamW (optim::adamw()). The options given here are the
  /// generated constructor's defaults; the kind is fixed in the code.
  optim::OptimizerOptions optimizer = optim::adamw();
  /// Whose weight decay the options' weight_decay is: the parameters optim::decayed_by_default picks
  /// (weight matrices and embeddings, as optim::adamw_factory), or every parameter (as an optimizer
  /// made over graph.params() with no groups).
  DecayedParameters decayed = DecayedParameters::by_default;
  /// Global-norm clipping before the update, or none; the constructor's default.
  std::optional<double> clip_norm = 1.0;
};

struct GeneratedSources {
  std::string header, source;
};

/// Differentiates `objective` with respect to every parameter, compiles the forward and the
/// training schedule as compile() does, and writes a class with a typed parameter struct,
/// forward(), train_step() (forward + backward + the chosen update), checkpoints and a fixed-size arena.
/// The code calls the library's kernels only: no graph, no compiler pass at run time.
GeneratedSources generate_cpp(Graph& graph, const CodegenSpec& spec);

}  // namespace xg
