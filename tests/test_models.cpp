// Behaviour of the layers and the three models: padding is invisible, the causal mask hides the
// future, parameters carry PyTorch's names, training is reproducible, bad configurations say why.
#include <doctest/doctest.h>

#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "graph/decoder_lm.hpp"
#include "graph/encoder_classifier.hpp"
#include "graph/registry.hpp"
#include "graph/seq2seq.hpp"

using namespace xg;

namespace {

using Ints = xt::xarray<std::int32_t>;

models::ModelConfig tiny(nn::NormStyle norm = nn::NormStyle::post) {
  models::ModelConfig c;
  c.d_model = 8;
  c.heads = 2;
  c.d_ff = 16;
  c.max_len = 6;
  c.dropout = 0.1;
  c.norm = norm;
  return c;
}

struct LM {
  Graph g{11, DType::f64};
  models::DecoderLM m = models::decoder_lm(g, {tiny(nn::NormStyle::pre), 9, 2, true, 2, 5});
  std::vector<Var> params = g.params();
  std::vector<Var> grads = grad(g, m.objective, params);
  Var d_logits = grad(g, m.objective, {m.logits})[0];
};

/// Runs `outputs` of g once on feeds and returns their values.
std::vector<xt::xarray<double>> run(Graph& g, const std::vector<Var>& outputs, const std::vector<Feed>& feeds) {
  Program p = compile(g, outputs);
  p.run(feeds);
  std::vector<xt::xarray<double>> values;
  for (Var v : outputs) values.push_back(p.get<double>(v));
  return values;
}

std::vector<Var> joined(std::vector<Var> a, const std::vector<Var>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("decoder LM: padded positions get exactly zero gradient, and their tokens change nothing") {
  LM lm;
  const Ints lengths{5, 3};
  const Ints labels{{1, 2, 3, 4, 5}, {6, 7, 8, 0, 0}};
  const Ints tokens{{8, 1, 2, 3, 4}, {8, 6, 7, 0, 0}};
  const Ints other_padding{{8, 1, 2, 3, 4}, {8, 6, 7, 5, 2}};
  const std::vector<Var> outputs = joined({lm.m.objective, lm.d_logits}, lm.grads);
  const auto base = run(lm.g, outputs, {{lm.m.tokens, tokens}, {lm.m.lengths, lengths}, {lm.m.labels, labels}});
  for (std::size_t t = 3; t < 5; ++t) {
    for (std::size_t v = 0; v < 9; ++v) CHECK(base[1](1, t, v) == 0.0);
  }
  CHECK(xt::amax(xt::abs(base[1]))() > 0.0);
  const Ints other_labels{{1, 2, 3, 4, 5}, {6, 7, 8, 3, 1}};
  const auto changed = run(lm.g, outputs, {{lm.m.tokens, other_padding}, {lm.m.lengths, lengths}, {lm.m.labels, other_labels}});
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    CAPTURE(k);
    CHECK(changed[k] == base[k]);
  }
}

TEST_CASE("decoder LM: changing token t+1 leaves the logits at positions <= t unchanged") {
  LM lm;
  const Ints lengths{5, 5};
  const Ints labels = xt::zeros<std::int32_t>({2, 5});
  const Ints tokens{{1, 2, 3, 4, 5}, {6, 7, 8, 1, 2}};
  const auto base = run(lm.g, {lm.m.logits}, {{lm.m.tokens, tokens}, {lm.m.lengths, lengths}, {lm.m.labels, labels}})[0];
  for (std::size_t t = 0; t + 1 < 5; ++t) {
    Ints changed = tokens;
    changed(0, t + 1) = (changed(0, t + 1) + 3) % 9;
    const auto logits = run(lm.g, {lm.m.logits}, {{lm.m.tokens, changed}, {lm.m.lengths, lengths}, {lm.m.labels, labels}})[0];
    CAPTURE(t);
    CHECK(xt::view(logits, 0, xt::range(0, t + 1)) == xt::view(base, 0, xt::range(0, t + 1)));
    CHECK(xt::amax(xt::abs(xt::view(logits, 0, t + 1) - xt::view(base, 0, t + 1)))() > 1e-6);
    CHECK(xt::view(logits, 1) == xt::view(base, 1));
  }
}

TEST_CASE("encoder-decoder: source and target padding change nothing and get no gradient") {
  Graph g(5, DType::f64);
  const models::Seq2Seq m = models::seq2seq(g, {tiny(), 9, 7, 1, 2, 2, 4, 3});
  const std::vector<Var> params = g.params();
  const std::vector<Var> outputs = joined({m.objective, grad(g, m.objective, {m.logits})[0]}, grad(g, m.objective, params));
  const Ints src_lengths{4, 2}, tgt_lengths{3, 1};
  auto evaluate = [&](const Ints& src, const Ints& tgt, const Ints& labels) {
    return run(g, outputs, {{m.src_tokens, src}, {m.src_lengths, src_lengths}, {m.tgt_tokens, tgt},
                            {m.tgt_lengths, tgt_lengths}, {m.labels, labels}});
  };
  const auto base = evaluate({{1, 2, 3, 4}, {5, 6, 0, 0}}, {{0, 3, 4}, {0, 0, 0}}, {{3, 4, 1}, {5, 0, 0}});
  const auto changed = evaluate({{1, 2, 3, 4}, {5, 6, 7, 8}}, {{0, 3, 4}, {0, 2, 6}}, {{3, 4, 1}, {5, 3, 2}});
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    CAPTURE(k);
    CHECK(changed[k] == base[k]);
  }
  CHECK(xt::view(base[1], 1, xt::range(1, 3)) == xt::zeros<double>({2, 7}));
}

TEST_CASE("encoder classifier: padding tokens change neither the logits nor the gradients") {
  Graph g(5, DType::f64);
  const models::EncoderClassifier m = models::encoder_classifier(g, {tiny(), 9, 3, 2, 2, 5});
  const std::vector<Var> outputs = joined({m.logits, m.objective}, grad(g, m.objective, g.params()));
  const Ints lengths{5, 2}, labels{2, 1};
  const Ints tokens{{1, 2, 3, 4, 5}, {6, 7, 0, 0, 0}}, other{{1, 2, 3, 4, 5}, {6, 7, 8, 1, 3}};
  const auto base = run(g, outputs, {{m.tokens, tokens}, {m.lengths, lengths}, {m.labels, labels}});
  const auto changed = run(g, outputs, {{m.tokens, other}, {m.lengths, lengths}, {m.labels, labels}});
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    CAPTURE(k);
    CHECK(changed[k] == base[k]);
  }
}

TEST_CASE("parameters carry PyTorch-style names and shapes") {
  Graph g;
  models::seq2seq(g, {tiny(nn::NormStyle::pre), 9, 7, 2, 2, 2, 4, 3});
  CHECK(g.find("encoder.0.self_attn.q_proj.weight").shape() == Shape{8, 8});
  CHECK(g.find("encoder.1.linear1.weight").shape() == Shape{16, 8});
  CHECK(g.find("encoder.1.linear2.bias").shape() == Shape{8});
  CHECK(g.find("decoder.1.cross_attn.out_proj.bias").shape() == Shape{8});
  CHECK(g.find("decoder.0.norm3.weight").shape() == Shape{8});
  CHECK(g.find("encoder.norm.weight").shape() == Shape{8});  // pre-LN stacks end in a LayerNorm
  CHECK(g.find("src_embed.weight").shape() == Shape{9, 8});
  CHECK(g.find("output_proj.weight").shape() == Shape{7, 8});
  // nn.Linear's initialisation: U(-1/sqrt(in), 1/sqrt(in)).
  const auto w = g.value(g.find("encoder.1.linear2.weight")).as<float>();
  CHECK(xt::amax(xt::abs(w))() <= 0.25f);
  CHECK(xt::amax(xt::abs(w))() > 0.2f);
  CHECK(g.value(g.find("decoder.0.norm1.weight")).as<float>() == xt::ones<float>({8}));
}

TEST_CASE("GPT-2 settings: init_std draws weights from N(0, std) with zero biases; gelu_tanh changes the output") {
  // The registry's keys, as graph/meson.build spells a model; f64 so that small differences show.
  const std::string gpt2 = "dtype=f64 vocab=50 d_model=16 heads=2 d_ff=64 layers=2 batch=2 seq=5 max_len=8 dropout=0 "
                           "norm=pre positions=learned scale_embedding=0 init_std=0.02";
  auto logits = [](const std::string& settings, Graph& g) {
    const models::BuiltModel built = models::build_model(g, models::parse_recipe("decoder_lm", settings));
    const Ints tokens{{1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}}, lengths{5, 5};
    return run(g, {built.outputs[0].second}, {{g.find("tokens"), tokens}, {g.find("lengths"), lengths}})[0];
  };
  auto value = [](Graph& g, const char* name) { return g.value(g.find(name)).as<double>(); };
  Graph g(5, DType::f64);
  const xt::xarray<double> relu_logits = logits(gpt2, g);
  for (const char* weight : {"tok_embed.weight", "tok_embed_pos.weight", "layers.0.self_attn.q_proj.weight",
                             "layers.1.linear2.weight"}) {
    CHECK_MESSAGE(std::sqrt(xt::mean(xt::square(value(g, weight)))()) == doctest::Approx(0.02).epsilon(0.1), weight);
  }
  CHECK(value(g, "layers.0.self_attn.out_proj.bias") == xt::zeros<double>({16}));
  CHECK(value(g, "layers.1.linear1.bias") == xt::zeros<double>({64}));
  CHECK(value(g, "layers.norm.weight") == xt::ones<double>({16}));
  Graph default_init(5, DType::f64);  // without init_std: PyTorch's defaults, as before
  logits("dtype=f64 vocab=50 d_model=16 heads=2 d_ff=64 layers=2 batch=2 seq=5 positions=learned", default_init);
  CHECK(xt::amax(xt::abs(value(default_init, "layers.1.linear1.bias")))() > 0.1);
  CHECK(xt::amax(xt::abs(value(default_init, "tok_embed.weight")))() > 1.0);

  // Same seed, same draws: only the activation differs, by the tanh approximation's small error.
  Graph tanh_gelu(5, DType::f64), erf_gelu(5, DType::f64);
  const xt::xarray<double> with_tanh = logits(gpt2 + " activation=gelu_tanh", tanh_gelu);
  const xt::xarray<double> with_erf = logits(gpt2 + " activation=gelu", erf_gelu);
  const double approximation = xt::amax(xt::abs(with_tanh - with_erf))();
  CHECK(approximation > 0.0);
  CHECK(approximation * 100 < xt::amax(xt::abs(relu_logits - with_erf))());
}

TEST_CASE("training is bit-for-bit reproducible for a seed, with dropout active") {
  auto train = [](std::uint64_t seed) {
    Graph g(seed);
    const models::DecoderLM m = models::decoder_lm(g, {tiny(), 9, 2, false, 2, 5});
    Trainer trainer(g, m.objective, [](Graph& graph, std::vector<Var> p) {
      return std::make_unique<optim::Adam>(graph, std::move(p), optim::adamw());
    });
    const Ints tokens{{8, 1, 2, 3, 4}, {8, 6, 7, 0, 0}}, labels{{1, 2, 3, 4, 5}, {6, 7, 8, 0, 0}}, lengths{5, 3};
    std::vector<double> losses;
    for (int step = 0; step < 6; ++step) {
      losses.push_back(trainer.step({{m.tokens, tokens}, {m.lengths, lengths}, {m.labels, labels}}, 1e-2));
    }
    return losses;
  };
  const std::vector<double> a = train(3), b = train(3), c = train(4);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a.back() < a.front());
}

TEST_CASE("layers refuse bad configurations with clear errors") {
  Graph g;
  const Var x = g.input("x", {2, 4, 6});
  CHECK_THROWS_WITH_AS(nn::self_attention(x, {}, "attn", {4, 0.0}), doctest::Contains("not divisible by 4 heads"),
                       ValueError);
  CHECK_THROWS_WITH_AS(nn::add_positions(x, nn::sinusoidal_positions(g, 3, 6)), doctest::Contains("exceeds the 3 positions"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(nn::encoder_layer(x, {}, "enc", {8, 2, 16, 0.0, nn::NormStyle::post, nn::Activation::relu, 1e-5}),
                       doctest::Contains("expected (B, S, 8)"), ShapeError);
  const Var memory = g.input("memory", {3, 4, 6});
  CHECK_THROWS_WITH_AS(nn::cross_attention(x, memory, {}, "cross", {2, 0.0}), doctest::Contains("cross"), ShapeError);
  CHECK_THROWS_WITH_AS(nn::linear(x, "fc", 0), doctest::Contains("out_features"), ValueError);
}
