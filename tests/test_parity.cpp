// PyTorch parity of every layer kind of xgrad/nn and of one small model per family of graph/: with
// the weights and inputs of tests/golden/nn.txt (written by golden/make_nn_fixtures.py with Debian's
// python3-torch), outputs and gradients (to every parameter and every float input) must match
// PyTorch's within 1e-5 relative in f64. Gradient checks prove the gradients consistent with the
// forward pass; these tests prove the forward pass is the one PyTorch users expect.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <xgrad/nn.hpp>
#include <xgrad/xgrad.hpp>

#include "golden.hpp"
#include "graph/decoder_lm.hpp"
#include "graph/encoder_classifier.hpp"
#include "graph/seq2seq.hpp"

using namespace xg;

namespace {

constexpr double kTolerance = 1e-5;  // |xgrad - PyTorch| <= kTolerance * max(1, |PyTorch|)
constexpr std::int64_t D = 8, H = 2, F = 12, S = 5, MAX_LEN = 6;
constexpr double kDropout = 0.1;  // inactive: Programs run in evaluation mode unless told otherwise

const testing::Golden& fixtures() {
  static const testing::Golden golden("nn.txt");
  return golden;
}

/// The <name> of every record "<case_name>.<kind>.<name>".
std::set<std::string> record_names(const std::string& case_name, const std::string& kind) {
  const std::string prefix = case_name + "." + kind + ".";
  std::set<std::string> names;
  for (const auto& [record, value] : fixtures().records()) {
    if (record.starts_with(prefix)) names.insert(record.substr(prefix.size()));
  }
  return names;
}

template <class Dims>
std::string shape_text(const Dims& dims) {
  return to_string(Shape(dims.begin(), dims.end()));
}

/// Compares elementwise with |got - want| <= kTolerance * max(1, |want|) and names the worst element.
void check_close(const xt::xarray<double>& got, const std::string& record) {
  const xt::xarray<double> want = fixtures().f64(record);
  const bool same_shape = got.shape() == want.shape();
  CHECK_MESSAGE(same_shape, record, ": xgrad's shape ", shape_text(got.shape()), " differs from PyTorch's ",
                shape_text(want.shape()));
  if (!same_shape) return;
  double worst = 0.0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    double error = std::abs(got.flat(i) - want.flat(i)) / std::max(1.0, std::abs(want.flat(i)));
    if (std::isnan(error)) error = std::numeric_limits<double>::infinity();
    if (error > worst) {
      worst = error;
      worst_at = i;
    }
  }
  INFO(record, ": worst relative error ", worst, " at flat index ", worst_at, " (xgrad ", got.flat(worst_at),
       ", PyTorch ", want.flat(worst_at), ")");
  CHECK(worst <= kTolerance);
}

/// An input of the graph with the shape and dtype of the record "<case_name>.input.<name>".
Var input(Graph& g, const std::string& case_name, const std::string& name) {
  const Tensor& value = fixtures()[case_name + ".input." + name];
  return g.input(name, value.shape(), value.dtype());
}

/// Gives every parameter of the graph its fixture value; the parameters of the graph and of the
/// fixture must be the same set of names with the same shapes.
void load_parameters(Graph& g, const std::string& case_name) {
  const std::set<std::string> recorded = record_names(case_name, "param");
  std::set<std::string> in_graph;
  for (Var p : g.params()) {
    const std::string& name = p.node().name;
    in_graph.insert(name);
    REQUIRE_MESSAGE(recorded.contains(name), case_name, ": xgrad parameter '", name, "' has no PyTorch value");
    const Tensor& value = fixtures()[case_name + ".param." + name];
    REQUIRE_MESSAGE(value.shape() == p.shape(), case_name, ": parameter '", name, "' has another shape in PyTorch");
    g.value(p) = value;
  }
  for (const std::string& name : recorded) {
    CHECK_MESSAGE(in_graph.contains(name), case_name, ": PyTorch parameter '", name, "' is no parameter of xgrad's graph");
  }
}

/// What a case's graph computes: its output and, for the models, their own objective.
struct Built {
  Var output;
  std::optional<Var> objective = {};
};

/// Builds one case in a fresh f64 graph, loads its parameters and inputs from the fixture,
/// differentiates the objective (the model's own, or sum(output * w) with the fixture's w) with
/// respect to every parameter and float input, runs once and compares everything with PyTorch.
template <class Build>
void check_case(const std::string& case_name, Build build) {
  Graph g(0, DType::f64);
  const Built built = build(g);
  const Var objective = built.objective ? *built.objective
                                        : sum(built.output * g.constant(fixtures()[case_name + ".output_weights"]));
  load_parameters(g, case_name);

  const std::set<std::string> recorded_inputs = record_names(case_name, "input");
  std::vector<Feed> feeds;
  std::vector<Var> wrt = g.params();
  std::vector<std::string> wrt_records;
  for (Var p : wrt) wrt_records.push_back(case_name + ".grad." + p.node().name);
  for (Var in : g.inputs()) {
    const std::string& name = in.node().name;
    REQUIRE_MESSAGE(recorded_inputs.contains(name), case_name, ": input '", name, "' has no PyTorch value");
    feeds.push_back({in, TensorRef(fixtures()[case_name + ".input." + name])});
    if (is_float(in.dtype())) {
      wrt.push_back(in);
      wrt_records.push_back(case_name + ".grad_input." + name);
    }
  }
  CHECK_MESSAGE(feeds.size() == recorded_inputs.size(), case_name, ": PyTorch has inputs the graph does not");

  const std::vector<Var> grads = grad(g, objective, wrt);
  std::vector<Var> outputs{built.output, objective};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  Program p = compile(g, outputs);
  p.run(feeds);

  check_close(p.get<double>(built.output), case_name + ".output");
  check_close(p.get<double>(objective), case_name + ".objective");
  for (std::size_t i = 0; i < grads.size(); ++i) check_close(p.get<double>(grads[i]), wrt_records[i]);
}

Var padding(Graph& g, const std::string& case_name, const std::string& lengths_name, std::int64_t seq_len) {
  return nn::key_padding_bias(input(g, case_name, lengths_name), seq_len, DType::f64);
}

nn::LayerConfig layer_config(nn::NormStyle norm, nn::Activation activation) {
  return {D, H, F, kDropout, norm, activation, 1e-5};
}

models::ModelConfig model_config(nn::NormStyle norm, nn::Activation activation, models::Positions positions) {
  models::ModelConfig c;
  c.d_model = D;
  c.heads = H;
  c.d_ff = F;
  c.max_len = MAX_LEN;
  c.dropout = kDropout;
  c.norm = norm;
  c.activation = activation;
  c.positions = positions;
  c.scale_embedding = true;
  return c;
}

void check_encoder_layer(const std::string& name, nn::NormStyle norm, nn::Activation activation) {
  check_case(name, [&](Graph& g) {
    const Var bias = padding(g, name, "lengths", S);
    return Built{nn::encoder_layer(input(g, name, "x"), bias, "enc", layer_config(norm, activation))};
  });
}

void check_decoder_layer(const std::string& name, nn::NormStyle norm, nn::Activation activation) {
  check_case(name, [&](Graph& g) {
    const Var x = input(g, name, "x");
    const Var memory = input(g, name, "memory");
    const std::int64_t tgt_len = x.shape()[1];
    const Var self_bias = nn::causal_bias(g, tgt_len, DType::f64) + padding(g, name, "lengths", tgt_len);
    const Var memory_bias = padding(g, name, "memory_lengths", memory.shape()[1]);
    return Built{nn::decoder_layer(x, memory, self_bias, memory_bias, "dec", layer_config(norm, activation))};
  });
}

}  // namespace

using models::Positions;
using nn::Activation;
using nn::NormStyle;

TEST_CASE("PyTorch parity: linear") {
  check_case("linear", [](Graph& g) { return Built{nn::linear(input(g, "linear", "x"), "fc", 3)}; });
}

TEST_CASE("PyTorch parity: linear without bias") {
  check_case("linear_nobias", [](Graph& g) { return Built{nn::linear(input(g, "linear_nobias", "x"), "fc", 3, false)}; });
}

TEST_CASE("PyTorch parity: token embedding scaled by sqrt(dim)") {
  check_case("embedding", [](Graph& g) {
    const Var table = nn::embedding_table(g, "embed", 7, D);
    return Built{nn::embed(table, input(g, "embedding", "tokens"), true)};
  });
}

TEST_CASE("PyTorch parity: sinusoidal positions table") {
  Graph g(0, DType::f64);
  const Var table = nn::sinusoidal_positions(g, MAX_LEN, D);
  Program p = compile(g, {table});
  p.run({});
  check_close(p.get<double>(table), "positions.output");
}

TEST_CASE("PyTorch parity: layer_norm") {
  check_case("layer_norm", [](Graph& g) { return Built{nn::layer_norm(input(g, "layer_norm", "x"), "norm")}; });
}

TEST_CASE("PyTorch parity: feed_forward, relu and gelu") {
  for (Activation activation : {Activation::relu, Activation::gelu}) {
    const std::string name = activation == Activation::relu ? "feed_forward_relu" : "feed_forward_gelu";
    check_case(name, [&](Graph& g) {
      return Built{nn::feed_forward(input(g, name, "x"), "ff", F, activation, kDropout)};
    });
  }
}

TEST_CASE("PyTorch parity: self-attention with key padding") {
  check_case("self_attention", [](Graph& g) {
    const Var bias = padding(g, "self_attention", "lengths", S);
    return Built{nn::self_attention(input(g, "self_attention", "x"), bias, "attn", {H, kDropout})};
  });
}

TEST_CASE("PyTorch parity: causal self-attention with key padding") {
  check_case("causal_self_attention", [](Graph& g) {
    const Var bias = nn::causal_bias(g, S, DType::f64) + padding(g, "causal_self_attention", "lengths", S);
    return Built{nn::self_attention(input(g, "causal_self_attention", "x"), bias, "attn", {H, kDropout})};
  });
}

TEST_CASE("PyTorch parity: cross attention with memory padding") {
  check_case("cross_attention", [](Graph& g) {
    const Var x = input(g, "cross_attention", "x");
    const Var memory = input(g, "cross_attention", "memory");
    const Var bias = padding(g, "cross_attention", "memory_lengths", S);
    return Built{nn::cross_attention(x, memory, bias, "attn", {H, kDropout})};
  });
}

TEST_CASE("PyTorch parity: encoder layer, post-LN (relu) and pre-LN (gelu)") {
  check_encoder_layer("encoder_layer_post", NormStyle::post, Activation::relu);
  check_encoder_layer("encoder_layer_pre", NormStyle::pre, Activation::gelu);
}

TEST_CASE("PyTorch parity: decoder layer, post-LN (gelu) and pre-LN (relu)") {
  check_decoder_layer("decoder_layer_post", NormStyle::post, Activation::gelu);
  check_decoder_layer("decoder_layer_pre", NormStyle::pre, Activation::relu);
}

TEST_CASE("PyTorch parity: encoder classifier, 2 post-LN layers, masked-mean pooling, tanh pooler") {
  check_case("encoder_classifier", [](Graph& g) {
    const models::EncoderClassifierConfig c{model_config(NormStyle::post, Activation::relu, Positions::sinusoidal), 9, 3,
                                            2, 2, S};
    const models::EncoderClassifier m = models::encoder_classifier(g, c);
    return Built{m.logits, m.objective};
  });
}

TEST_CASE("PyTorch parity: decoder-only LM, 2 pre-LN layers + final norm, tied output, loss mask") {
  check_case("decoder_lm", [](Graph& g) {
    const models::DecoderLMConfig c{model_config(NormStyle::pre, Activation::gelu, Positions::sinusoidal), 11, 2, true, 2,
                                    S};
    const models::DecoderLM m = models::decoder_lm(g, c);
    return Built{m.logits, m.objective};
  });
}

TEST_CASE("PyTorch parity: decoder-only LM, 1 post-LN layer, untied head, learned positions") {
  check_case("decoder_lm_untied", [](Graph& g) {
    const models::DecoderLMConfig c{model_config(NormStyle::post, Activation::relu, Positions::learned), 10, 1, false, 2,
                                    4};
    const models::DecoderLM m = models::decoder_lm(g, c);
    return Built{m.logits, m.objective};
  });
}

TEST_CASE("PyTorch parity: encoder-decoder, 2 + 2 post-LN layers, source and target padding, loss mask") {
  check_case("seq2seq", [](Graph& g) {
    const models::Seq2SeqConfig c{model_config(NormStyle::post, Activation::relu, Positions::sinusoidal), 9, 7, 2, 2, 2,
                                  S, 4};
    const models::Seq2Seq m = models::seq2seq(g, c);
    return Built{m.logits, m.objective};
  });
}
