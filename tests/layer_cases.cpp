// Gradient-check cases for every layer of xgrad/nn and each model of graph/, at tiny sizes and with
// padding present (lengths shorter than the sequence), so that the masks are exercised.
#include <xgrad/nn.hpp>

#include "graph/decoder_lm.hpp"
#include "graph/encoder_classifier.hpp"
#include "graph/seq2seq.hpp"
#include "op_cases.hpp"

namespace xg::testing {
namespace {

constexpr std::int64_t B = 2, S = 4, D = 8, H = 2, F = 12;

Var lengths(Graph& g) { return ints(g, {4, 2}); }

/// Everything trainable in the graph, plus the named extra parameters the case made itself.
CheckTarget all_params(Var y) { return {y, y.graph().params()}; }

nn::LayerConfig layer_config(nn::NormStyle norm, nn::Activation activation = nn::Activation::relu) {
  return {D, H, F, 0.1, norm, activation, 1e-5};
}

models::ModelConfig model_config(nn::NormStyle norm, models::Positions positions) {
  models::ModelConfig c;
  c.d_model = D;
  c.heads = H;
  c.d_ff = F;
  c.max_len = 6;
  c.norm = norm;
  c.positions = positions;
  return c;
}

std::vector<OpCase> build_layer_cases() {
  using nn::NormStyle;
  std::vector<OpCase> cases{
      {"nn::linear", "(2, 3, 5) -> 4 with bias", [](Graph& g) {
         return all_params(nn::linear(normal(g, "x", {2, 3, 5}), "fc", 4));
       }},
      {"nn::embed", "scaled by sqrt(dim)", [](Graph& g) {
         const Var table = nn::embedding_table(g, "embed", 5, D);
         return all_params(nn::embed(table, ints(g, {{0, 4, 4}, {2, 1, 0}}), true));
       }},
      {"nn::add_positions", "learned table longer than S", [](Graph& g) {
         return all_params(nn::add_positions(normal(g, "x", {B, S, D}), nn::learned_positions(g, "pos", 6, D)));
       }},
      {"nn::add_positions", "sinusoidal", [](Graph& g) {
         return all_params(nn::add_positions(normal(g, "x", {B, S, D}), nn::sinusoidal_positions(g, S, D)));
       }},
      {"nn::layer_norm", "(2, 4, 8) with weight and bias", [](Graph& g) {
         // Perturbed affine parameters, so that their gradients are not checked only at 1 and 0.
         const Var y = nn::layer_norm(normal(g, "x", {B, S, D}), "norm");
         for (Var p : g.params()) g.value(p).as<double>() += xt::linspace<double>(-0.3, 0.4, 8);
         return all_params(y);
       }},
      {"nn::feed_forward", "relu", [](Graph& g) {
         return all_params(nn::feed_forward(normal(g, "x", {B, S, D}), "ff", F, nn::Activation::relu, 0.1));
       }},
      {"nn::feed_forward", "gelu", [](Graph& g) {
         return all_params(nn::feed_forward(normal(g, "x", {B, S, D}), "ff", F, nn::Activation::gelu, 0.1));
       }},
      {"nn::self_attention", "key padding, lengths [4, 2]", [](Graph& g) {
         const Var bias = nn::key_padding_bias(lengths(g), S, DType::f64);
         return all_params(nn::self_attention(normal(g, "x", {B, S, D}), bias, "attn", {H, 0.1}));
       }},
      {"nn::self_attention", "causal + key padding", [](Graph& g) {
         const Var bias = nn::causal_bias(g, S, DType::f64) + nn::key_padding_bias(lengths(g), S, DType::f64);
         return all_params(nn::self_attention(normal(g, "x", {B, S, D}), bias, "attn", {H, 0.1}));
       }},
      {"nn::cross_attention", "Sq 3 over memory Sk 4 with padding", [](Graph& g) {
         const Var bias = nn::key_padding_bias(lengths(g), S, DType::f64);
         return all_params(nn::cross_attention(normal(g, "x", {B, 3, D}), normal(g, "memory", {B, S, D}), bias, "attn",
                                               {H, 0.1}));
       }},
  };
  for (NormStyle norm : {NormStyle::post, NormStyle::pre}) {
    const std::string style = norm == NormStyle::post ? "post-LN" : "pre-LN";
    cases.push_back({"nn::encoder_layer", style + ", key padding", [norm](Graph& g) {
                       const Var bias = nn::key_padding_bias(lengths(g), S, DType::f64);
                       return all_params(nn::encoder_layer(normal(g, "x", {B, S, D}), bias, "enc", layer_config(norm)));
                     }});
    cases.push_back({"nn::decoder_layer", style + ", causal + padding, memory padding", [norm](Graph& g) {
                       const Var self_bias =
                           nn::causal_bias(g, 3, DType::f64) + nn::key_padding_bias(ints(g, {3, 2}), 3, DType::f64);
                       const Var memory_bias = nn::key_padding_bias(lengths(g), S, DType::f64);
                       return all_params(nn::decoder_layer(normal(g, "x", {B, 3, D}), normal(g, "memory", {B, S, D}),
                                                           self_bias, memory_bias, "dec",
                                                           layer_config(norm, nn::Activation::gelu)));
                     }});
  }
  cases.push_back({"nn::encoder", "2 pre-LN layers + final norm", [](Graph& g) {
                     const Var bias = nn::key_padding_bias(lengths(g), S, DType::f64);
                     return all_params(nn::encoder(normal(g, "x", {B, S, D}), bias, "encoder",
                                                   {layer_config(NormStyle::pre), 2, true}));
                   }});
  cases.push_back({"nn::decoder", "2 post-LN layers", [](Graph& g) {
                     const Var bias = nn::causal_bias(g, S, DType::f64);
                     return all_params(nn::decoder(normal(g, "x", {B, S, D}), normal(g, "memory", {B, 3, D}), bias, {},
                                                   "decoder", {layer_config(NormStyle::post), 2, false}));
                   }});

  cases.push_back({"model", "encoder classifier, post-LN", [](Graph& g) {
                     models::EncoderClassifierConfig c{model_config(NormStyle::post, models::Positions::sinusoidal),
                                                       7, 3, 1, B, S};
                     const models::EncoderClassifier m = models::encoder_classifier(g, c);
                     CheckTarget t = all_params(m.objective);
                     t.feeds = {{m.tokens, Tensor(xt::xarray<std::int32_t>{{1, 2, 3, 4}, {5, 6, 0, 0}})},
                                {m.lengths, Tensor(xt::xarray<std::int32_t>{4, 2})},
                                {m.labels, Tensor(xt::xarray<std::int32_t>{2, 0})}};
                     return t;
                   }});
  for (bool tied : {true, false}) {
    cases.push_back({"model", tied ? "decoder-only LM, tied output, pre-LN" : "decoder-only LM, untied, learned positions",
                     [tied](Graph& g) {
                       models::DecoderLMConfig c{
                           model_config(tied ? NormStyle::pre : NormStyle::post,
                                        tied ? models::Positions::sinusoidal : models::Positions::learned),
                           7, 2, tied, B, S};
                       const models::DecoderLM m = models::decoder_lm(g, c);
                       CheckTarget t = all_params(m.objective);
                       t.feeds = {{m.tokens, Tensor(xt::xarray<std::int32_t>{{1, 2, 3, 4}, {5, 6, 0, 0}})},
                                  {m.lengths, Tensor(xt::xarray<std::int32_t>{4, 2})},
                                  {m.labels, Tensor(xt::xarray<std::int32_t>{{2, 3, 4, 1}, {6, 1, 0, 0}})}};
                       return t;
                     }});
  }
  cases.push_back({"model", "encoder-decoder, post-LN", [](Graph& g) {
                     models::Seq2SeqConfig c{model_config(NormStyle::post, models::Positions::sinusoidal), 7, 6, 1, 1,
                                             B, S, 3};
                     const models::Seq2Seq m = models::seq2seq(g, c);
                     CheckTarget t = all_params(m.objective);
                     t.feeds = {{m.src_tokens, Tensor(xt::xarray<std::int32_t>{{1, 2, 3, 4}, {5, 6, 0, 0}})},
                                {m.src_lengths, Tensor(xt::xarray<std::int32_t>{4, 2})},
                                {m.tgt_tokens, Tensor(xt::xarray<std::int32_t>{{0, 3, 4}, {0, 5, 0}})},
                                {m.tgt_lengths, Tensor(xt::xarray<std::int32_t>{3, 2})},
                                {m.labels, Tensor(xt::xarray<std::int32_t>{{3, 4, 1}, {5, 1, 0}})}};
                     return t;
                   }});
  return cases;
}

}  // namespace

const std::vector<OpCase>& layer_cases() {
  static const std::vector<OpCase> cases = build_layer_cases();
  return cases;
}

}  // namespace xg::testing
