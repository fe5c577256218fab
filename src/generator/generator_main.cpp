// The generator program's command line, shared by every model a build compiles: a user's own
// (through main.cpp beside this file) and any program that defines its models another way.
#include <exception>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "xgrad/codegen.hpp"
#include "xgrad/model_generator.hpp"

namespace xg {

int generator_main(int argc, char** argv, const std::function<ModelDefinition(Graph&)>& define) {
  std::string class_name;
  std::filesystem::path header, source;
  std::string dtype = "f32";
  CLI::App app{"Writes a model as a C++ class with constant shapes (run by the build; see xgrad/model_generator.hpp)."};
  app.add_option("class", class_name, "name of the generated class (in namespace xg::generated)")->required();
  app.add_option("header", header, "header to write")->required();
  app.add_option("source", source, "source file to write")->required();
  app.add_option("--dtype", dtype, "float type of the graph's inputs and parameters")
      ->check(CLI::IsMember({"f32", "f64"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    Graph graph(0, dtype == "f64" ? DType::f64 : DType::f32);
    const ModelDefinition model = define(graph);
    write_generated_model(graph, class_name, model, header, source);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: generating {}: {}\n", class_name, e.what());
    return 1;
  }
  return 0;
}

}  // namespace xg
