// Generated (build-time compiled) against interpreted (Program) on the same graphs: a model so tiny
// that per-call overhead shows (TinyLM) and one with W1's shapes (GptTiny), both listed in
// graph/meson.build. Training step (forward + backward + clipping + AdamW) and evaluation forward,
// alternating the two in rounds; each figure is the median over rounds of the median of --steps.
//   codegen_bench [--steps N] [--rounds R]
#include <random>
#include <string_view>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <xgrad/xgrad.hpp>

#include "gpt_tiny.hpp"
#include "graph/registry.hpp"
#include "timing.hpp"
#include "tiny_lm.hpp"

using namespace xg;

namespace {

struct Times {
  std::vector<double> interpreted_step, generated_step, interpreted_forward, generated_forward;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class Model>
void compare(std::string_view label, int steps, int rounds) {
  const auto recipe = models::parse_recipe(Model::description.substr(0, Model::description.find(' ')),
                                           Model::description.substr(Model::description.find(' ') + 1));
  Graph graph(1, recipe.float_type);
  const models::BuiltModel built = models::build_model(graph, recipe);
  Trainer trainer(graph, built.objective, optim::adamw_factory());
  std::vector<Var> outputs;
  for (const auto& output : built.outputs) outputs.push_back(output.second);
  Program forward = compile(graph, outputs);

  Model model(1);
  typename Model::Inputs inputs;
  std::mt19937 rng(3);
  const models::RandomInputs batch(recipe, graph, inputs.named(), rng);
  const std::span<const Feed> feeds = batch.feeds();

  Times t;
  const int warmup = 3;
  for (int round = 0; round < rounds; ++round) {
    t.interpreted_step.push_back(bench::median_ms(warmup, steps, [&] { trainer.step(feeds, 1e-4); }));
    t.generated_step.push_back(bench::median_ms(warmup, steps, [&] { model.train_step(inputs, 1e-4); }));
    t.interpreted_forward.push_back(bench::median_ms(warmup, steps, [&] { forward.run(feeds); }));
    t.generated_forward.push_back(bench::median_ms(warmup, steps, [&] { model.forward(inputs); }));
  }
  const double is = median(t.interpreted_step), gs = median(t.generated_step);
  const double ifw = median(t.interpreted_forward), gfw = median(t.generated_forward);
  fmt::print("{:<8} {:>7} {:>6} {:>12.1f} {:>12.1f} {:>7.3f} {:>12.1f} {:>12.1f} {:>7.3f} {:>10.2f}\n", label,
             Model::parameter_scalars, Model::train_step_kernel_calls, is * 1e3, gs * 1e3, gs / is, ifw * 1e3, gfw * 1e3,
             gfw / ifw, static_cast<double>(Model::arena_bytes) / (1 << 20));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 50, rounds = 5;
  CLI::App app{"Times build-time generated models against the interpreted Program of the same graph.", "codegen_bench"};
  app.option_defaults()->always_capture_default();
  app.add_option("--steps", steps, "timed steps per round (ten times as many for the tiny model)")->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds, "rounds; the median is reported")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  fmt::print("{:<8} {:>7} {:>6} {:>12} {:>12} {:>7} {:>12} {:>12} {:>7} {:>10}\n", "model", "params", "calls",
             "interp us", "generated us", "ratio", "interp fwd", "gen fwd", "ratio", "arena MiB");
  compare<generated::TinyLM>("tiny", steps * 10, rounds);
  compare<generated::GptTiny>("small", steps, rounds);
}
