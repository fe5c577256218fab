// char_lm's decoder-only language model, trained and run through code generated at build time
// (graph/meson.build lists it as CharLM): no graph and no compile step at run time. It saves a
// checkpoint, which the interpreted Program of the same graph then loads and evaluates to the same
// bits, and samples text.
#include <optional>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <xgrad/xgrad.hpp>

#include "char_lm_model.hpp"
#include "char_text.hpp"
#include "graph/registry.hpp"

using namespace xg;
using Model = generated::CharLM;

namespace {

struct Options {
  std::string text_path = XG_EXAMPLE_TEXT;
  std::string checkpoint = (std::filesystem::temp_directory_path() / "generated_lm.safetensors").string();
  std::int64_t steps = 1200;
  std::uint64_t seed = 1;
  std::int64_t sample_chars = 240;
};

/// Fills `o` from the command line; returns the exit code when the program should stop (--help, a bad flag).
std::optional<int> parse(int argc, char** argv, Options& o) {
  CLI::App app{"char_lm's model trained and sampled through code generated at build time.", "generated_lm"};
  app.option_defaults()->always_capture_default();
  app.add_option("--text", o.text_path, "text to train on")->check(CLI::ExistingFile);
  app.add_option("--steps", o.steps, "training steps")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "seed of the data and the model")->check(CLI::PositiveNumber);
  app.add_option("--sample", o.sample_chars, "characters to sample after training")->check(CLI::PositiveNumber);
  app.add_option("--checkpoint", o.checkpoint, "where the checkpoint is saved");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

void fill(Model::Inputs& inputs, const examples::TextWindows::Batch& batch) {
  inputs.tokens.assign(batch.inputs.tokens);
  inputs.lengths.assign(batch.inputs.lengths);
  inputs.labels.assign(batch.labels.tokens);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const std::optional<int> stop = parse(argc, argv, o)) return *stop;
  const std::string text = examples::read_text(o.text_path, "generated_lm");
  const examples::Alphabet alphabet(text);
  constexpr auto vocab = static_cast<std::int64_t>(decltype(Model::Parameters{}.tok_embed_weight)::shape[0]);
  constexpr auto S = static_cast<std::int64_t>(decltype(Model::Inputs{}.tokens)::shape[1]);
  constexpr auto B = static_cast<std::int64_t>(decltype(Model::Inputs{}.tokens)::shape[0]);
  if (alphabet.size() > vocab || static_cast<std::int64_t>(text.size()) <= S + 1) {
    fmt::print(stderr, "generated_lm: the model was generated for at most {} distinct characters and needs more than {} "
                       "characters of text; {} has {} and {}\n",
               vocab - 1, S + 1, o.text_path, alphabet.size() - 1, text.size());
    return 1;
  }
  fmt::print("generated {} ({}): {} parameters, arena {:.2f} MiB, {} kernel calls per training step\n",
             "CharLM", Model::description, Model::parameter_scalars, static_cast<double>(Model::arena_bytes) / (1 << 20),
             Model::train_step_kernel_calls);

  Model model(o.seed, optim::adamw(0.01), 1.0);
  Model::Inputs inputs;
  std::mt19937_64 rng(o.seed);
  examples::TextWindows windows(alphabet.encode(text), S);
  const optim::WarmupCosine schedule{3e-3, 50, o.steps, 1e-4};
  ProgressLine progress(o.steps);
  for (std::int64_t step = 0; step < o.steps; ++step) {
    const auto batch = windows.draw(rng, B);
    fill(inputs, batch);
    const float loss = model.train_step(inputs, schedule(step));
    progress.update(step, loss, xt::sum(batch.inputs.lengths)());
  }
  progress.finish();
  fmt::print("training loss {:.3f} nats per character (uniform guessing: {:.2f})\n", progress.running_loss(),
             std::log(alphabet.size()));

  // The same checkpoint, read by the interpreted Program of the same graph.
  model.save(o.checkpoint, {{"text", o.text_path}});
  const auto recipe = models::parse_recipe("decoder_lm", Model::description.substr(Model::description.find(' ') + 1));
  Graph graph(o.seed, recipe.float_type);
  const models::BuiltModel built = models::build_model(graph, recipe);
  load_checkpoint(o.checkpoint, graph);
  Program interpreted = compile(graph, {built.objective});
  const auto batch = windows.draw(rng, B);
  fill(inputs, batch);
  model.forward(inputs);
  interpreted.run({{graph.find("tokens"), batch.inputs.tokens},
                   {graph.find("lengths"), batch.inputs.lengths},
                   {graph.find("labels"), batch.labels.tokens}});
  const float generated_loss = model.objective(), interpreted_loss = interpreted.get<float>(built.objective)();
  fmt::print("checkpoint {}: evaluation loss {:.6f} generated, {:.6f} interpreted ({})\n", o.checkpoint, generated_loss,
             interpreted_loss, std::memcmp(&generated_loss, &interpreted_loss, sizeof(float)) == 0 ? "bit for bit" : "DIFFERENT");

  const examples::Sampler sampler(alphabet, S, 0.7);
  std::vector<std::string> samples(static_cast<std::size_t>(B), "The keeper ");
  inputs.labels.assign(xt::zeros<std::int32_t>({static_cast<std::size_t>(B), static_cast<std::size_t>(S)}));
  for (std::int64_t k = 0; k < o.sample_chars; ++k) {
    const PaddedBatch in = sampler.windows(samples);
    inputs.tokens.assign(in.tokens);
    inputs.lengths.assign(in.lengths);
    model.forward(inputs);
    sampler.extend(samples, in, model.logits().data(), vocab, rng);
  }
  fmt::print("samples (temperature 0.7):\n");
  for (std::size_t b = 0; b < 2; ++b) fmt::print("---\n{}\n", samples[b]);
  return generated_loss == interpreted_loss ? 0 : 1;
}
