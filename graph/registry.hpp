#pragma once
// The model families by name, each built from a one-line text config such as
// "vocab=16 d_model=32 heads=4 layers=2 batch=4 seq=12": what xgrad-codegen reads from
// graph/meson.build, and what tests use to build the same graph in-process.
#include <map>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xgrad/checkpoint.hpp>
#include <xgrad/compile.hpp>
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
  /// What the objective is a mean over, for TrainerOptions::weight: the number of valid tokens of the
  /// loss mask (decoder_lm, seq2seq); unset for encoder_classifier, whose objective is a mean over
  /// the batch, so micro-batches of one graph weigh alike.
  Var weight{};
};

/// Adds the model to `g` (whose float type should be recipe.float_type).
BuiltModel build_model(Graph& g, const ModelRecipe& recipe);

/// Valid random values for an input of the recipe's graph (tokens below their vocabulary, lengths
/// in [1, S], labels below the class count): what tests and benchmarks feed.
xt::xarray<std::int32_t> random_input(const ModelRecipe& recipe, const Node& input, std::mt19937& rng);

/// Random valid values for every input a generated model names (`slots`, its Inputs::named()),
/// written into those slots and kept as feeds of the same values for the recipe's graph `g`: both
/// ways of running a model see one batch. The feeds view arrays held here, so it is not copied.
class RandomInputs {
 public:
  RandomInputs(const ModelRecipe& recipe, Graph& g, std::span<const CheckpointTensor> slots, std::mt19937& rng);
  /// Random valid values for every input of `g`, as feeds only.
  RandomInputs(const ModelRecipe& recipe, Graph& g, std::mt19937& rng);
  RandomInputs(const RandomInputs&) = delete;
  RandomInputs& operator=(const RandomInputs&) = delete;
  std::span<const Feed> feeds() const { return feeds_; }

 private:
  std::vector<xt::xarray<std::int32_t>> arrays_;
  std::vector<Feed> feeds_;
};

}  // namespace xg::models
