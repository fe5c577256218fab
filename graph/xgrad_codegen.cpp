// xgrad-codegen: writes a model of graph/ as C++ at build time.
//   xgrad-codegen FAMILY CLASS HEADER SOURCE [key=value ...]   (--help lists them)
// builds FAMILY's graph from the settings (see graph/registry.hpp), runs the compile pipeline and
// writes the generated class CLASS to HEADER and SOURCE. An error in the graph (a shape mismatch in
// the settings) fails the build with the message the same graph gives at run time.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <xgrad/codegen.hpp>

#include "graph/registry.hpp"

namespace {

/// Writes through a temporary file and a rename, so that an interrupted build leaves no half file.
void write_file(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path temporary = path.string() + ".tmp";
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (file == nullptr) throw xg::IOError(fmt::format("cannot write {}: {}", temporary.string(), std::strerror(errno)));
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    std::filesystem::remove(temporary);
    throw xg::IOError(fmt::format("cannot write {}", temporary.string()));
  }
  std::filesystem::rename(temporary, path);
}

}  // namespace

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
    xg::CodegenSpec spec{class_name, header.filename().string(), fmt::format("{} {}", family, config), model.outputs,
                         model.objective};
    const xg::GeneratedSources code = xg::generate_cpp(graph, spec);
    write_file(header, code.header);
    write_file(source, code.source);
  } catch (const std::exception& e) {
    fmt::print(stderr, "xgrad-codegen: error: {} ({} {}): {}\n", class_name, family, config, e.what());
    return 1;
  }
  return 0;
}
