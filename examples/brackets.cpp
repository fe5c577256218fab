// An encoder-only (BERT-like) classifier learns whether a string of brackets is balanced. Strings
// have lengths 1..L and are padded, so the key padding mask and the masked-mean pooling are at work.
// Half of the unbalanced strings have as many '(' as ')' and fail only by order, so counting alone
// does not solve the task. The last line reads "held-out accuracy: NN.N%".
#include <optional>
#include <random>
#include <string_view>
#include <unordered_set>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <xgrad/xgrad.hpp>

#include "graph/encoder_classifier.hpp"
#include "held_out.hpp"

using namespace xg;

namespace {

constexpr std::int32_t kPad = 0, kOpen = 1, kClose = 2;

struct Options {
  std::int64_t steps = 3000;
  std::uint64_t seed = 1;
  std::int64_t max_len = 16;
  std::int64_t batch = 64;
  std::int64_t held_out = 1024;
};

/// Fills `o` from the command line; returns the exit code when the program should stop (--help, a bad flag).
std::optional<int> parse(int argc, char** argv, Options& o) {
  CLI::App app{"An encoder classifier learns whether a string of brackets is balanced.", "brackets"};
  app.option_defaults()->always_capture_default();
  app.add_option("--steps", o.steps, "training steps")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "seed of the data and the model")->check(CLI::PositiveNumber);
  app.add_option("--max-len", o.max_len, "longest bracket string")->check(CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "sequences per step")->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

using Brackets = std::vector<std::int32_t>;

bool balanced(const Brackets& s) {
  int depth = 0;
  for (std::int32_t t : s) {
    depth += t == kOpen ? 1 : -1;
    if (depth < 0) return false;
  }
  return depth == 0;
}

/// A random balanced string of n pairs: at each position, open or close with equal odds where both keep it valid.
Brackets random_balanced(std::mt19937_64& rng, std::int64_t pairs) {
  Brackets s;
  std::int64_t open_left = pairs, depth = 0;
  while (static_cast<std::int64_t>(s.size()) < 2 * pairs) {
    const bool can_open = open_left > 0, can_close = depth > 0;
    const bool open = can_open && (!can_close || std::bernoulli_distribution(0.5)(rng));
    s.push_back(open ? kOpen : kClose);
    depth += open ? 1 : -1;
    open_left -= open ? 1 : 0;
  }
  return s;
}

/// Balanced or not with equal odds. Unbalanced: a flipped bracket (any length, counts differ) or,
/// half of the time, an open and a later close swapped (counts equal, order wrong).
std::pair<Brackets, std::int32_t> random_example(std::mt19937_64& rng, std::int64_t max_len) {
  std::uniform_int_distribution<std::int64_t> pairs(1, max_len / 2);
  Brackets s = random_balanced(rng, pairs(rng));
  if (std::bernoulli_distribution(0.5)(rng)) return {s, 1};
  std::uniform_int_distribution<std::size_t> at(0, s.size() - 1);
  while (balanced(s)) {
    if (std::bernoulli_distribution(0.5)(rng)) {
      s[at(rng)] ^= kOpen ^ kClose;
      if (std::bernoulli_distribution(0.5)(rng) && static_cast<std::int64_t>(s.size()) < max_len) s.push_back(kOpen);
    } else {
      const std::size_t i = at(rng), j = at(rng);
      if (i < j && s[i] == kOpen && s[j] == kClose) std::swap(s[i], s[j]);
    }
  }
  return {s, 0};
}

std::string text_of(const Brackets& s) {
  std::string t;
  for (std::int32_t x : s) t += x == kOpen ? '(' : ')';
  return t;
}

struct Batch {
  PaddedBatch tokens;
  xt::xarray<std::int32_t> labels;
};
Batch make_batch(const std::vector<std::pair<Brackets, std::int32_t>>& examples, std::int64_t max_len) {
  std::vector<Brackets> strings;
  xt::xarray<std::int32_t> labels = xt::zeros<std::int32_t>({examples.size()});
  for (std::size_t i = 0; i < examples.size(); ++i) {
    strings.push_back(examples[i].first);
    labels(i) = examples[i].second;
  }
  return {pad_sequences(strings, max_len, kPad), labels};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const std::optional<int> stop = parse(argc, argv, o)) return *stop;
  models::EncoderClassifierConfig c;
  c.model.d_model = 64;
  c.model.heads = 4;
  c.model.d_ff = 128;
  c.model.max_len = o.max_len;
  c.model.dropout = 0.0;
  c.model.positions = models::Positions::learned;
  c.vocab = 3;
  c.classes = 2;
  c.layers = 3;
  c.batch = o.batch;
  c.seq_len = o.max_len;

  Graph g(o.seed);
  const models::EncoderClassifier m = models::encoder_classifier(g, c);
  Trainer trainer(g, m.objective, optim::adamw_factory(/*weight_decay=*/0.01, /*clip_norm=*/1.0));
  Program classify = compile(g, {m.logits});
  fmt::print("encoder classifier: {} parameters, {} layers, d_model {}, strings of 1..{} brackets, batch {}\n",
             models::parameter_count(g), c.layers, c.model.d_model, o.max_len, o.batch);

  std::mt19937_64 rng(o.seed);
  std::vector<std::pair<Brackets, std::int32_t>> held_out;
  std::unordered_set<std::string> held_out_text;
  while (static_cast<std::int64_t>(held_out.size()) < o.held_out) {
    auto example = random_example(rng, o.max_len);
    const std::string text = text_of(example.first);
    if (examples::is_held_out(text) && held_out_text.insert(text).second) held_out.push_back(std::move(example));
  }

  const optim::WarmupCosine schedule{1e-3, 100, o.steps, 1e-5};
  ProgressLine progress(o.steps);
  for (std::int64_t step = 0; step < o.steps; ++step) {
    std::vector<std::pair<Brackets, std::int32_t>> examples;
    while (static_cast<std::int64_t>(examples.size()) < o.batch) {
      auto example = random_example(rng, o.max_len);
      if (!examples::is_held_out(text_of(example.first))) examples.push_back(std::move(example));
    }
    const Batch b = make_batch(examples, o.max_len);
    const double loss = trainer.step(
        {{m.tokens, b.tokens.tokens}, {m.lengths, b.tokens.lengths}, {m.labels, b.labels}}, schedule(step));
    progress.update(step, loss, xt::sum(b.tokens.lengths)());
  }
  progress.finish();

  std::int64_t correct = 0, evaluated = 0;
  const xt::xarray<std::int32_t> no_labels = xt::zeros<std::int32_t>({static_cast<std::size_t>(o.batch)});
  for (std::size_t first = 0; first + static_cast<std::size_t>(o.batch) <= held_out.size();
       first += static_cast<std::size_t>(o.batch)) {
    const std::vector<std::pair<Brackets, std::int32_t>> examples(
        held_out.begin() + static_cast<std::ptrdiff_t>(first), held_out.begin() + static_cast<std::ptrdiff_t>(first) + o.batch);
    const Batch b = make_batch(examples, o.max_len);
    classify.run({{m.tokens, b.tokens.tokens}, {m.lengths, b.tokens.lengths}, {m.labels, no_labels}});
    const xt::xarray<float> logits = classify.get<float>(m.logits);
    for (std::size_t i = 0; i < examples.size(); ++i) {
      const std::int32_t predicted = logits(i, 1) > logits(i, 0) ? 1 : 0;
      correct += predicted == examples[i].second ? 1 : 0;
      ++evaluated;
      if (first == 0 && i < 8) {
        fmt::print("  {:<{}} {:<10} {}\n", text_of(examples[i].first), o.max_len, predicted ? "balanced" : "unbalanced",
                   predicted == examples[i].second ? "ok" : "WRONG");
      }
    }
  }
  fmt::print("held-out accuracy: {:.1f}%\n", 100.0 * static_cast<double>(correct) / static_cast<double>(evaluated));
}
