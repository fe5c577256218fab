#pragma once
// The model families by name, each built from a one-line text config such as
// "vocab=16 d_model=32 heads=4 layers=2 batch=4 seq=12": what xgrad-codegen reads from
// graph/meson.build, and what tests use to build the same graph in-process.
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xgrad/graph.hpp>

namespace xg::models {

/// A family name, its settings, and the graph's float type (key `dtype`, f32 or f64).
struct ModelRecipe {
  std::string family;  // decoder_lm, encoder_classifier or seq2seq
  std::map<std::string, std::string, std::less<>> settings;
  DType float_type = DType::f32;
};

/// Parses "key=value key=value ...". Unknown families and keys and unreadable values are a
/// ValueError naming them and listing what is known.
ModelRecipe parse_recipe(std::string_view family, std::string_view config);

/// What a recipe adds to a graph: the values forward() computes, by name, and the training objective.
struct BuiltModel {
  std::vector<std::pair<std::string, Var>> outputs;
  Var objective;
};

/// Adds the model to `g` (whose float type should be recipe.float_type).
BuiltModel build_model(Graph& g, const ModelRecipe& recipe);

}  // namespace xg::models
