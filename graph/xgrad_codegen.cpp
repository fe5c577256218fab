// xgrad-codegen: writes a model of graph/ as C++ at build time.
//   xgrad-codegen FAMILY CLASS HEADER SOURCE [key=value ...]   (--help lists them)
// builds FAMILY's graph from the settings (see graph/registry.hpp) and writes the generated class
// CLASS to HEADER and SOURCE through write_generated_model, the function a user's own model
// generator (xgrad/model_generator.hpp) runs too: the string settings are only this program's
// command line. An error in the graph (a shape mismatch in the settings) fails the build with the
// message the same graph gives at run time.
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <xgrad/codegen.hpp>

#include "graph/registry.hpp"

int main(int argc, char** argv) {
  std::string family, class_name;
  std::filesystem::path header, source;
  std::vector<std::string> settings;
  CLI::App app{"Writes a model of graph/ as a C++ class with constant shapes (run by Meson at build time).",
               "xgrad-codegen"};
  app.add_option("family", family, "model family (graph/registry.hpp)")->required();
  app.add_option("class", class_name, "name of the generated class")->required();
  app.add_option("header", header, "header to write")->required();
  app.add_option("source", source, "source file to write")->required();
  app.add_option("settings", settings, "the family's settings, key=value (graph/registry.hpp)");
  CLI11_PARSE(app, argc, argv);
  const std::string config = fmt::format("{}", fmt::join(settings, " "));
  try {
    const xg::models::ModelRecipe recipe = xg::models::parse_recipe(family, config);
    xg::Graph graph(0, recipe.float_type);
    const xg::models::BuiltModel model = xg::models::build_model(graph, recipe);
    const xg::ModelDefinition definition{
        .outputs = model.outputs, .objective = model.objective, .description = fmt::format("{} {}", family, config)};
    xg::write_generated_model(graph, class_name, definition, header, source);
  } catch (const std::exception& e) {
    fmt::print(stderr, "xgrad-codegen: error: {} ({} {}): {}\n", class_name, family, config, e.what());
    return 1;
  }
  return 0;
}
