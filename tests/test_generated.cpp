// Build-time compiled models (graph/meson.build) against the interpreted Program of the same graph:
// same seed, same inputs -> the same bits in outputs, gradients, updated parameters and
// checkpoints, with dropout active. Each family is listed there with a small config.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include <unistd.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "graph/registry.hpp"
#include "test_decoder_lm.hpp"
#include "test_decoder_lm_f64.hpp"
#include "test_decoder_lm_gated.hpp"
#include "test_decoder_lm_threads.hpp"
#include "test_encoder_classifier.hpp"
#include "test_seq2seq.hpp"
#include "tiny_lm.hpp"
#include "xgrad/xgrad.hpp"

using namespace xg;

namespace {

models::ModelRecipe recipe_of(std::string_view description) {
  const std::size_t space = description.find(' ');
  return models::parse_recipe(description.substr(0, space), description.substr(space + 1));
}

bool same_bits(const void* a, const void* b, std::size_t bytes) { return std::memcmp(a, b, bytes) == 0; }

std::size_t bytes_of(const CheckpointTensor& t) {
  std::size_t n = size_of(t.dtype);
  for (std::size_t d : t.shape) n *= d;
  return n;
}

/// The generated model and the graph it was generated from, built in-process with the same seed.
template <class Model>
struct Pair {
  models::ModelRecipe recipe = recipe_of(Model::description);
  Graph graph;
  models::BuiltModel built;
  Model model;
  std::mt19937 rng{7};

  explicit Pair(std::uint64_t seed) : graph(seed, recipe.float_type), built(models::build_model(graph, recipe)), model(seed) {}

  std::unique_ptr<models::RandomInputs> drawn;  // what the feeds of the last draw() view

  /// New random inputs, as feeds for the graph and as the generated model's Inputs.
  void draw(typename Model::Inputs& inputs, std::vector<Feed>& feeds) {
    drawn = std::make_unique<models::RandomInputs>(recipe, graph, inputs.named(), rng);
    feeds.assign(drawn->feeds().begin(), drawn->feeds().end());
  }

  void require_same_parameters() { require_same_parameters_as(model); }
  void require_same_parameters_as(const Model& other) {
    for (const CheckpointTensor& p : other.params.named()) {
      const Tensor& value = graph.value(graph.find(p.name));
      INFO("parameter ", p.name);
      REQUIRE(bytes_of(p) == static_cast<std::size_t>(value.numel()) * size_of(value.dtype()));
      CHECK(same_bits(p.data, value.data(), bytes_of(p)));
    }
  }
};

std::filesystem::path scratch_dir() {
  auto dir = std::filesystem::temp_directory_path() / fmt::format("xgrad_generated_{}", ::getpid());
  std::filesystem::create_directories(dir);
  return dir;
}

template <class Model>
void check_against_interpreter() {
  Pair<Model> pair(11);
  Graph& graph = pair.graph;
  const models::BuiltModel& built = pair.built;
  auto& model = pair.model;
  pair.require_same_parameters();

  // Forward, evaluation mode.
  std::vector<Var> outputs;
  for (const auto& output : built.outputs) outputs.push_back(output.second);
  Program forward = compile(graph, outputs);
  typename Model::Inputs inputs;
  std::vector<Feed> feeds;
  pair.draw(inputs, feeds);
  forward.run(feeds);
  model.forward(inputs);
  const TensorRef logits = forward.view(built.outputs[0].second);
  CHECK(same_bits(model.logits().data(), logits.data, model.logits().size_bytes()));
  const auto objective = model.objective();
  CHECK(same_bits(&objective, forward.view(built.objective).data, sizeof(objective)));

  // Training steps, dropout active: objective, gradients, clipping and updated parameters.
  Trainer trainer(graph, built.objective, optim::adamw_factory());
  for (int step = 0; step < 3; ++step) {
    pair.draw(inputs, feeds);
    const double lr = 1e-3 * (step + 1);
    const double interpreted = trainer.step(feeds, lr);
    const auto generated = model.train_step(inputs, lr);
    CHECK(static_cast<decltype(generated)>(interpreted) == generated);
    CHECK(trainer.last_step().grad_norm == model.last_step().grad_norm);
    const auto grads = model.gradients().named();
    for (std::size_t k = 0; k < grads.size(); ++k) {
      INFO("gradient of ", grads[k].name, " at step ", step);
      CHECK(same_bits(trainer.program().view(trainer.gradients()[k]).data, grads[k].data, bytes_of(grads[k])));
    }
    pair.require_same_parameters();
  }
}

}  // namespace

TEST_CASE("generated models compute what the interpreted Program computes, bit for bit") {
  SUBCASE("decoder-only LM, pre-LN, untied output, dropout") { check_against_interpreter<generated::TestDecoderLM>(); }
  SUBCASE("encoder classifier, GELU, learned positions, dropout") { check_against_interpreter<generated::TestEncoderClassifier>(); }
  SUBCASE("encoder-decoder, dropout") { check_against_interpreter<generated::TestSeq2Seq>(); }
  SUBCASE("decoder-only LM in f64") { check_against_interpreter<generated::TestDecoderLMF64>(); }
  SUBCASE("decoder-only LM whose kernels split across threads") {
    check_against_interpreter<generated::TestDecoderLMThreads>();
  }
  SUBCASE("decoder-only LM without dropout: ReLU's gradient gate inside the product") {
    check_against_interpreter<generated::TestDecoderLMGated>();
  }
}

TEST_CASE("generated models read and write Trainer's checkpoints and resume bit for bit") {
  using Model = generated::TestDecoderLM;
  Pair<Model> pair(5);
  Trainer trainer(pair.graph, pair.built.objective, optim::adamw_factory());
  Model::Inputs inputs;
  std::vector<Feed> feeds;
  for (int step = 0; step < 2; ++step) {
    pair.draw(inputs, feeds);
    trainer.step(feeds, 1e-3);
  }
  const auto dir = scratch_dir();
  const std::string from_trainer = (dir / "trainer.safetensors").string(), from_model = (dir / "model.safetensors").string();
  trainer.save(from_trainer, {{"epoch", "3"}});

  // The seed fixes the dropout streams (as it does for a graph); the file brings the rest.
  Model resumed(5);
  CHECK_FALSE(same_bits(resumed.params.named()[0].data, pair.graph.value(pair.graph.find("tok_embed.weight")).data(),
                        bytes_of(resumed.params.named()[0])));
  const auto metadata = resumed.load(from_trainer);
  CHECK(metadata.at("epoch") == "3");
  CHECK(resumed.run_index() == trainer.program().run_index());
  CHECK(resumed.optimizer_steps() == 2);
  pair.require_same_parameters_as(resumed);
  pair.draw(inputs, feeds);
  CHECK(static_cast<float>(trainer.step(feeds, 1e-3)) == resumed.train_step(inputs, 1e-3));
  pair.require_same_parameters_as(resumed);

  // Back again: the generated model saves, a trainer on a fresh graph loads and continues.
  resumed.save(from_model);
  Graph fresh(5, pair.recipe.float_type);
  const models::BuiltModel rebuilt = models::build_model(fresh, pair.recipe);
  Trainer continued(fresh, rebuilt.objective, optim::adamw_factory());
  continued.load(from_model);
  CHECK(continued.program().run_index() == resumed.run_index());
  CHECK(continued.optimizer().steps() == resumed.optimizer_steps());
  pair.draw(inputs, feeds);
  std::vector<Feed> fresh_feeds;
  for (const Feed& f : feeds) fresh_feeds.push_back({fresh.find(f.var.node().name), f.value});
  CHECK(static_cast<float>(continued.step(fresh_feeds, 1e-3)) == resumed.train_step(inputs, 1e-3));
  for (const CheckpointTensor& p : resumed.params.named()) {
    INFO("parameter ", p.name);
    CHECK(same_bits(p.data, fresh.value(fresh.find(p.name)).data(), bytes_of(p)));
  }

  // Parameters alone, from a checkpoint without optimizer state.
  save_checkpoint((dir / "params.safetensors").string(), fresh);
  Model evaluated(7);
  CHECK_THROWS_AS(evaluated.load((dir / "params.safetensors").string()), CheckpointError);
  evaluated.load_parameters((dir / "params.safetensors").string());
  pair.draw(inputs, feeds);
  evaluated.forward(inputs);
  resumed.forward(inputs);
  CHECK(evaluated.objective() == resumed.objective());

  // Another model's file: every mismatch named, nothing loaded.
  generated::TinyLM other;
  other.save((dir / "other.safetensors").string());
  const Model::Parameters before = evaluated.params;
  try {
    evaluated.load((dir / "other.safetensors").string());
    FAIL("a checkpoint of another model was loaded");
  } catch (const CheckpointError& e) {
    CHECK(std::string(e.what()).find("missing parameter 'lm_head.weight'") != std::string::npos);
  }
  CHECK(same_bits(before.named()[0].data, evaluated.params.named()[0].data, bytes_of(evaluated.params.named()[0])));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a shape error in a build-time graph fails the code generator with the run-time message") {
  const std::string settings = "seq=16 max_len=8";
  std::string runtime_message;
  try {
    Graph g;
    models::build_model(g, models::parse_recipe("decoder_lm", settings));
  } catch (const ShapeError& e) {
    runtime_message = e.what();
  }
  REQUIRE_FALSE(runtime_message.empty());
  const auto dir = scratch_dir();
  const std::string command = fmt::format("{} decoder_lm Bad {}/bad.hpp {}/bad.cpp {} 2>&1", XG_CODEGEN, dir.string(),
                                          dir.string(), settings);
  std::FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  CHECK(status != 0);
  CHECK(output.find(runtime_message) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "bad.hpp"));
  CHECK_FALSE(std::filesystem::exists(dir / "bad.cpp"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("generated model API: fixed tensors, named inputs, constants of the build") {
  using Model = generated::TinyLM;
  static_assert(decltype(Model::Parameters{}.tok_embed_weight)::shape == std::array<std::size_t, 2>{16, 16});
  static_assert(Model::arena_bytes > 0 && Model::train_step_kernel_calls > Model::forward_kernel_calls);
  Model::Inputs inputs;
  CHECK(inputs.named().size() == 3);
  CHECK_THROWS_AS(inputs.tokens.assign(xt::xarray<std::int32_t>::from_shape({2, 9})), ShapeError);
  inputs.tokens.assign(xt::ones<std::int32_t>({2, 8}));
  CHECK(inputs.tokens(1, 7) == 1);
  inputs.lengths.assign(xt::xarray<std::int32_t>{8, 9});  // 9 > seq: the kernel's IndexError names the node
  Model model;
  try {
    model.forward(inputs);
    FAIL("a length beyond the sequence was accepted");
  } catch (const IndexError& e) {
    CHECK(std::string(e.what()).find("(sequence_mask)") != std::string::npos);
  }
}
