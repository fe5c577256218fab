// A decoder-only (GPT-like) character language model trained on the small text this example ships
// (examples/data/lighthouse.txt, or --text FILE). Windows of random length are padded to the model's
// length, so the loss mask is at work. Prints how the loss falls, then samples text.
#include <optional>
#include <algorithm>
#include <cmath>
#include <random>
#include <string_view>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <xgrad/xgrad.hpp>

#include "char_text.hpp"
#include "graph/decoder_lm.hpp"

using namespace xg;

namespace {

struct Options {
  std::string text_path = XG_EXAMPLE_TEXT;
  std::int64_t steps = 1200;
  std::uint64_t seed = 1;
  std::int64_t sample_chars = 240;
  double temperature = 0.7;
};

/// Fills `o` from the command line; returns the exit code when the program should stop (--help, a bad flag).
std::optional<int> parse(int argc, char** argv, Options& o) {
  CLI::App app{"A character-level decoder-only language model: trains on a text, then samples from it.", "char_lm"};
  app.option_defaults()->always_capture_default();
  app.add_option("--text", o.text_path, "text to train on")->check(CLI::ExistingFile);
  app.add_option("--steps", o.steps, "training steps")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "seed of the data and the model")->check(CLI::PositiveNumber);
  app.add_option("--sample", o.sample_chars, "characters to sample after training")->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const std::optional<int> stop = parse(argc, argv, o)) return *stop;
  const std::string text = examples::read_text(o.text_path, "char_lm");
  const examples::Alphabet alphabet(text);

  models::DecoderLMConfig c;
  c.model.d_model = 96;
  c.model.heads = 4;
  c.model.d_ff = 384;
  c.model.max_len = 64;
  c.model.dropout = 0.1;
  c.model.norm = nn::NormStyle::pre;
  c.vocab = alphabet.size();
  c.layers = 2;
  c.tied_output = false;  // N(0, 1) embedding rows would make tied logits start far too large
  c.batch = 16;
  c.seq_len = 64;
  if (static_cast<std::int64_t>(text.size()) <= c.seq_len + 1) {
    fmt::print(stderr, "char_lm: the text needs more than {} characters\n", c.seq_len + 1);
    return 1;
  }

  Graph g(o.seed);
  const models::DecoderLM m = models::decoder_lm(g, c);
  Trainer trainer(g, m.objective, optim::adamw_factory(/*weight_decay=*/0.01, /*clip_norm=*/1.0));
  Program sampler = compile(g, {m.logits});
  fmt::print("decoder-only LM: {} characters of text, vocabulary {}, {} parameters, {} layers, d_model {}, "
             "arena {:.2f} MiB\n",
             text.size(), alphabet.size(), models::parameter_count(g), c.layers, c.model.d_model,
             static_cast<double>(trainer.program().memory().arena_bytes) / (1 << 20));

  std::mt19937_64 rng(o.seed);
  examples::TextWindows windows(alphabet.encode(text), c.seq_len);
  const optim::WarmupCosine schedule{3e-3, 50, o.steps, 1e-4};
  const std::int64_t report_every = std::max<std::int64_t>(1, o.steps / 6);
  std::vector<std::pair<std::int64_t, double>> segments;
  double segment_loss = 0.0;
  ProgressLine progress(o.steps);
  for (std::int64_t step = 0; step < o.steps; ++step) {
    const auto batch = windows.draw(rng, c.batch);
    const PaddedBatch &in = batch.inputs, &out = batch.labels;
    const double loss =
        trainer.step({{m.tokens, in.tokens}, {m.lengths, in.lengths}, {m.labels, out.tokens}}, schedule(step));
    progress.update(step, loss, xt::sum(in.lengths)());
    segment_loss += loss;
    if ((step + 1) % report_every == 0 || step + 1 == o.steps) {
      const std::int64_t count = (step + 1) % report_every == 0 ? report_every : (step + 1) % report_every;
      segments.emplace_back(step + 1, segment_loss / static_cast<double>(count));
      segment_loss = 0.0;
    }
  }
  progress.finish();
  fmt::print("mean training loss (nats per character; uniform guessing is {:.2f}):\n", std::log(alphabet.size()));
  for (const auto& [step, loss] : segments) fmt::print("  up to step {:>5}: {:.3f}\n", step, loss);

  // Sampling: every row of the batch continues the prompt; the window slides once it is full.
  const examples::Sampler text_sampler(alphabet, c.seq_len, o.temperature);
  std::vector<std::string> samples(static_cast<std::size_t>(c.batch), "The keeper ");
  const xt::xarray<std::int32_t> no_labels = xt::zeros<std::int32_t>({static_cast<std::size_t>(c.batch), static_cast<std::size_t>(c.seq_len)});
  for (std::int64_t k = 0; k < o.sample_chars; ++k) {
    const PaddedBatch in = text_sampler.windows(samples);
    sampler.run({{m.tokens, in.tokens}, {m.lengths, in.lengths}, {m.labels, no_labels}});
    text_sampler.extend(samples, in, static_cast<const float*>(sampler.view(m.logits).data), alphabet.size(), rng);
  }
  fmt::print("samples (temperature {}):\n", o.temperature);
  for (std::size_t b = 0; b < 2; ++b) fmt::print("---\n{}\n", samples[b]);
}
