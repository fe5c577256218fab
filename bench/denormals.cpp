// Subnormal values and step time: a decoder LM's training step (forward and backward) with
// flush-to-zero/denormals-are-zero on (CompileOptions::flush_denormals, the default) and off, first
// with ordinary parameters, then with every parameter scaled by 1e-20 so that products of two of
// them (about 1e-40) fall in f32's subnormal range, where x86 arithmetic stalls. Prints the median
// step times and how many output values differ between the two settings.
#include <cstring>
#include <random>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "graph/registry.hpp"
#include "timing.hpp"
#include "xgrad/xgrad.hpp"

using namespace xg;

namespace {

struct Measured {
  double step_ms = 0;
  std::vector<std::byte> values;  // objective and gradients after the last step
};

Measured measure(double parameter_scale, bool flush, int steps) {
  const models::ModelRecipe recipe =
      models::parse_recipe("decoder_lm", "vocab=256 d_model=256 heads=4 d_ff=1024 layers=2 batch=8 seq=64");
  Graph g(1, recipe.float_type);
  const models::BuiltModel built = models::build_model(g, recipe);
  for (Var p : g.params()) {
    Tensor& value = g.value(p);
    float* data = static_cast<float*>(value.data());
    for (std::int64_t i = 0; i < value.numel(); ++i) data[i] = static_cast<float>(data[i] * parameter_scale);
  }
  std::vector<Var> outputs{built.objective};
  for (Var gr : grad(g, built.objective, g.params())) outputs.push_back(gr);
  Program program = compile(g, outputs, {.flush_denormals = flush});
  program.set_training(true);
  std::mt19937 rng(2);
  const models::RandomInputs inputs(recipe, g, rng);
  Measured m;
  m.step_ms = bench::median_ms(2, steps, [&] { program.run(inputs.feeds()); });
  for (Var v : outputs) {
    const TensorRef t = program.view(v);
    const auto* data = static_cast<const std::byte*>(t.data);
    m.values.insert(m.values.end(), data, data + t.numel() * size_of(t.dtype));
  }
  return m;
}

std::size_t differing_floats(const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
  std::size_t count = 0;
  for (std::size_t i = 0; i + 4 <= a.size(); i += 4) count += std::memcmp(&a[i], &b[i], 4) != 0;
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 10;
  CLI::App app{"A training step's time with and without flushing subnormal numbers to zero.", "denormals"};
  app.option_defaults()->always_capture_default();
  app.add_option("steps,--steps", steps, "timed steps per measurement (also the first positional argument)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  fmt::print("decoder LM (d 256, 2 layers, B8 S64), forward + backward, median of {} steps\n\n", steps);
  fmt::print("{:<34} {:>14} {:>15} {:>8} {:>16}\n", "parameters", "flush on (ms)", "flush off (ms)", "off/on",
             "values differing");
  for (const auto& [label, scale] : {std::pair{"ordinary", 1.0}, std::pair{"scaled by 1e-20 (subnormal)", 1e-20}}) {
    const Measured on = measure(scale, true, steps), off = measure(scale, false, steps);
    fmt::print("{:<34} {:>14.2f} {:>15.2f} {:>8.2f} {:>10} of {}\n", label, on.step_ms, off.step_ms, off.step_ms / on.step_ms,
               differing_floats(on.values, off.values), on.values.size() / 4);
  }
}
