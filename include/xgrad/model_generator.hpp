#pragma once
// Your own model, compiled at build time. Your project defines xg::define_model in a source file and
// builds it into a small program linked with the `xgrad-generator` dependency, whose main() is
// generator_main(..., xg::define_model); the build runs that program to write the model's class
// (README, "Your model, compiled by Meson"):
//
//   xg::ModelDefinition xg::define_model(xg::Graph& g) {
//     xg::Var x = g.input("x", {32, 16});
//     ...
//     return {.outputs = {{"scores", scores}}, .objective = loss, .optimizer = xg::optim::SGDOptions{.momentum = 0.9}};
//   }
#include <functional>

#include "xgrad/graph.hpp"
#include "xgrad/model_definition.hpp"

namespace xg {

/// Defined by the model's source: builds the model into `graph`, which the generator made empty
/// with the float type the build asked for (--dtype).
ModelDefinition define_model(Graph& graph);

/// The generator's command line, `PROGRAM CLASS HEADER SOURCE [--dtype f32|f64]`: builds the model
/// with `define` into an empty graph and writes the class xg::generated::CLASS to HEADER and SOURCE
/// (write_generated_model). Returns the exit code: 0, or 1 after printing the error (a shape
/// mismatch in the model fails the build with the message the same graph gives at run time).
int generator_main(int argc, char** argv, const std::function<ModelDefinition(Graph&)>& define);

}  // namespace xg
