#pragma once
// Build-time compilation: the pipeline compile() runs in-process (autodiff, optimizing passes,
// schedule, liveness, memory plan) written out as C++ in which every shape, stride and arena offset
// is a constant. A generator program runs it during the build (model_generator.hpp for a user's own
// model; graph/xgrad-codegen for the families of graph/).
#include <filesystem>
#include <string>

#include "xgrad/graph.hpp"
#include "xgrad/model_definition.hpp"

namespace xg {

struct CodegenSpec {
  std::string class_name;      // a C++ identifier, e.g. "GptTiny"; the class goes in xg::generated
  std::string header_include;  // how the generated source includes its header, e.g. "gpt_tiny.hpp"
  ModelDefinition model;
};

struct GeneratedSources {
  std::string header, source;
};

/// Differentiates the model's objective with respect to every parameter, compiles the forward and
/// the training schedule as compile() does, and writes a class with a typed parameter struct,
/// forward(), train_step() (forward + backward + the chosen update), checkpoints and a fixed-size
/// arena. The code includes installed headers only and calls the library's kernels and runtime: no
/// graph, no compiler pass at run time.
GeneratedSources generate_cpp(Graph& graph, const CodegenSpec& spec);

/// generate_cpp, then writes the class to `header` and `source` (the source includes the header by
/// its file name), each atomically: an interrupted build leaves no half-written file.
void write_generated_model(Graph& graph, const std::string& class_name, const ModelDefinition& model,
                           const std::filesystem::path& header, const std::filesystem::path& source);

}  // namespace xg
