#pragma once
// Build-time compilation: the pipeline compile() runs in-process (autodiff, schedule, liveness,
// memory plan) written out as C++ in which every shape, stride and arena offset is a constant.
// xgrad-codegen (graph/) runs it during the build; graph/meson.build lists the models.
#include <string>
#include <utility>
#include <vector>

#include "xgrad/graph.hpp"

namespace xg {

struct CodegenSpec {
  std::string class_name;      // a C++ identifier, e.g. "GptTiny"; the class goes in xg::generated
  std::string header_include;  // how the generated source includes its header, e.g. "gpt_tiny.hpp"
  std::string description;     // what graph and config it is: a comment and the `description` member
  /// forward(): the values computed in evaluation mode, each read through an accessor of that name.
  std::vector<std::pair<std::string, Var>> outputs;
  /// train_step(): minimised with AdamW over every parameter of the graph.
  Var objective;
};

struct GeneratedSources {
  std::string header, source;
};

/// Differentiates `objective` with respect to every parameter, compiles the forward and the
/// training schedule as compile() does, and writes a class with a typed parameter struct,
/// forward(), train_step() (forward + backward + AdamW), checkpoints and a fixed-size arena.
/// The code calls the library's kernels only: no graph, no compiler pass at run time.
GeneratedSources generate_cpp(Graph& graph, const CodegenSpec& spec);

}  // namespace xg
