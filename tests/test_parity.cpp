// PyTorch parity of every layer kind of xgrad/nn and of one small model per family of graph/: with
// the weights and inputs that golden/make_nn_fixtures.py wrote with Debian's python3-torch, outputs
// and gradients (to every parameter and every float input) must match PyTorch's, twice:
//  - f64, small shapes (tests/golden/nn.txt): within 1e-5 relative, a check of the arithmetic alone;
//  - f32, shapes that take xgrad's SIMD, tiled-attention and GEMM code paths
//    (tests/golden/nn_f32.safetensors, PyTorch in float32): within 10 times PyTorch's own float32
//    rounding error of each case (kF32RoundingFactor).
// Gradient checks prove the gradients consistent with the forward pass; these tests prove the
// forward pass is the one PyTorch users expect, and the f32 kernels as close to PyTorch's as float32
// allows.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>
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

constexpr double kDropout = 0.1;  // inactive: Programs run in evaluation mode unless told otherwise

/// The shapes of one fixture set that the graphs need before they see the fixtures: the numbers of
/// the generator's SIZES_F64 and SIZES_F32 (batch and sequence lengths come from the inputs' shapes).
struct Sizes {
  std::int64_t d_model, heads, d_ff, max_len, linear_out;
  std::int64_t embedding_vocab, classifier_vocab, classes, lm_vocab, untied_vocab, source_vocab, target_vocab;
};

/// One fixture set: the file PyTorch wrote, the dtype of its graphs and its shapes.
struct FixtureSet {
  std::string name;
  const testing::Golden& (*golden)();  // the file, read once on first use
  DType dtype;
  Sizes sizes;
};

const testing::Golden& f64_fixtures() {
  static const testing::Golden golden("nn.txt");
  return golden;
}

const testing::Golden& f32_fixtures() {
  static const testing::Golden golden("nn_f32.safetensors");
  return golden;
}

const FixtureSet kF64{"f64", f64_fixtures, DType::f64, {8, 2, 12, 6, 3, 7, 9, 3, 11, 10, 9, 7}};
const FixtureSet kF32{"f32", f32_fixtures, DType::f32, {32, 4, 64, 40, 27, 37, 37, 5, 41, 37, 37, 29}};

// Every value x of a case (output, objective, each gradient) must satisfy, elementwise,
// |x_xgrad - x_PyTorch| <= tolerance * max(1, |x_PyTorch|).
//
// f64: both sides round at 1.1e-16 and agree to about 1e-14; 1e-5 flags any difference in what is
// computed without being a statement about rounding.
constexpr double kF64Tolerance = 1e-5;
// f32: each side rounds at u = 2^-24 = 6e-8 (machine epsilon 1.2e-7) and in its own order (GEMM
// blocking, SIMD lanes, the tiled online softmax), so the same arithmetic comes out differently by
// an amount that grows with the sums' lengths (here up to 140 terms: the weight gradients' sums
// over batch * sequence rows) and with the conditioning of the case (LayerNorm and softmax
// gradients are differences of such sums). Rather than bound all that by hand, the generator
// measures it for each case: `<case>.float32_rounding` is the worst relative error of PyTorch's
// float32 results against its own float64 results on the same weights and inputs (8e-7 to 6.4e-6
// for these cases). By the triangle inequality |xgrad - PyTorch| <= |xgrad - exact| + |PyTorch - exact|,
// so a tolerance of 10 times that measure admits xgrad an error up to 9 times PyTorch's: room
// for a summation order whose error grows with n where PyTorch's grows with log n or sqrt(n)
// (sqrt(140) = 12), and nothing beyond. The floor, 16 u, serves the values PyTorch rounds exactly
// (embedding lookups, the positions table) where xgrad may still differ in the last bits.
// The tests at the end show that a single weight moved by 1e-3 fails the check.
constexpr double kF32RoundingFactor = 10.0;
constexpr double kF32Floor = 16.0 * 0x1p-24;

double case_tolerance(const FixtureSet& set, const std::string& case_name) {
  if (set.dtype == DType::f64) return kF64Tolerance;
  const std::string record = case_name + ".float32_rounding";
  const double rounding = set.golden().records().contains(record) ? set.golden().f64(record)() : 0.0;
  return std::max(kF32RoundingFactor * rounding, kF32Floor);
}

/// Runs `check(set)` once per fixture set, each as its own doctest subcase.
template <class Check>
void for_each_set(Check check) {
  for (const FixtureSet* set : {&kF64, &kF32}) {
    SUBCASE(set->name.c_str()) { check(*set); }
  }
}

/// The <name> of every record "<case_name>.<kind>.<name>".
std::set<std::string> record_names(const FixtureSet& set, const std::string& case_name, const std::string& kind) {
  const std::string prefix = case_name + "." + kind + ".";
  std::set<std::string> names;
  for (const auto& [record, value] : set.golden().records()) {
    if (record.starts_with(prefix)) names.insert(record.substr(prefix.size()));
  }
  return names;
}

template <class Dims>
std::string shape_text(const Dims& dims) {
  return to_string(Shape(dims.begin(), dims.end()));
}

/// How far one of xgrad's values is from PyTorch's: the worst elementwise |got - want| / max(1, |want|).
struct Deviation {
  bool same_shape = true;
  double worst = 0.0;
  std::size_t at = 0;
  double got = 0.0, want = 0.0;
};

Deviation deviation(const xt::xarray<double>& got, const xt::xarray<double>& want) {
  Deviation d;
  d.same_shape = got.shape() == want.shape();
  if (!d.same_shape) return d;
  for (std::size_t i = 0; i < want.size(); ++i) {
    double error = std::abs(got.flat(i) - want.flat(i)) / std::max(1.0, std::abs(want.flat(i)));
    if (std::isnan(error)) error = std::numeric_limits<double>::infinity();
    if (error > d.worst) d = {true, error, i, got.flat(i), want.flat(i)};
  }
  return d;
}

/// What a case's graph computes: its output and, for the models, their own objective.
struct Built {
  Var output;
  std::optional<Var> objective = {};
};

/// A case's values from xgrad, each next to the name of PyTorch's record of the same value.
struct CaseResult {
  std::string case_name;
  std::vector<std::pair<std::string, xt::xarray<double>>> values;
};

/// One case's graph, built in a fresh graph of the set's dtype.
class CaseGraph {
 public:
  CaseGraph(const FixtureSet& set, std::string case_name) : set_(set), name_(std::move(case_name)), g_(0, set.dtype) {}
  CaseGraph(const CaseGraph&) = delete;
  CaseGraph& operator=(const CaseGraph&) = delete;

  Graph& graph() { return g_; }
  const Sizes& sizes() const { return set_.sizes; }
  const Tensor& record(const std::string& suffix) const { return set_.golden()[name_ + "." + suffix]; }

  /// An input with the shape and dtype of the record "<case>.input.<name>".
  Var input(const std::string& name) {
    const Tensor& value = record("input." + name);
    return g_.input(name, value.shape(), value.dtype());
  }
  /// The additive key-padding bias of the i32 input `lengths_name` over `seq_len` keys.
  Var padding(const std::string& lengths_name, std::int64_t seq_len) {
    return nn::key_padding_bias(input(lengths_name), seq_len, g_.float_type());
  }
  Var causal(std::int64_t seq_len) { return nn::causal_bias(g_, seq_len, g_.float_type()); }

  /// Gives every parameter its fixture value, then lets `tamper` change the graph's values (only
  /// the tests that show the comparison can fail do); differentiates the objective (the model's
  /// own, or sum(output * w) with the fixture's w) with respect to every parameter and float input,
  /// runs once and returns xgrad's values.
  CaseResult run(const Built& built, const std::function<void(Graph&)>& tamper = {}) {
    const Var objective =
        built.objective ? *built.objective : sum(built.output * g_.constant(record("output_weights")));
    load_parameters();
    if (tamper) tamper(g_);

    const std::set<std::string> recorded_inputs = record_names(set_, name_, "input");
    std::vector<Feed> feeds;
    std::vector<Var> wrt = g_.params();
    std::vector<std::string> wrt_records;
    for (Var p : wrt) wrt_records.push_back(name_ + ".grad." + p.node().name);
    for (Var in : g_.inputs()) {
      const std::string& name = in.node().name;
      REQUIRE_MESSAGE(recorded_inputs.contains(name), name_, ": input '", name, "' has no PyTorch value");
      feeds.push_back({in, TensorRef(record("input." + name))});
      if (is_float(in.dtype())) {
        wrt.push_back(in);
        wrt_records.push_back(name_ + ".grad_input." + name);
      }
    }
    CHECK_MESSAGE(feeds.size() == recorded_inputs.size(), name_, ": PyTorch has inputs the graph does not");

    const std::vector<Var> grads = grad(g_, objective, wrt);
    std::vector<Var> outputs{built.output, objective};
    outputs.insert(outputs.end(), grads.begin(), grads.end());
    Program p = compile(g_, outputs);
    p.run(feeds);

    CaseResult result{name_, {}};
    const auto widened = [&](Var v) -> xt::xarray<double> { return p.get(v).cast(DType::f64).as<double>(); };
    result.values.emplace_back(name_ + ".output", widened(built.output));
    result.values.emplace_back(name_ + ".objective", widened(objective));
    for (std::size_t i = 0; i < grads.size(); ++i) result.values.emplace_back(wrt_records[i], widened(grads[i]));
    return result;
  }

 private:
  /// The parameters of the graph and of the fixture must be the same set of names with the same shapes.
  void load_parameters() {
    const std::set<std::string> recorded = record_names(set_, name_, "param");
    std::set<std::string> in_graph;
    for (Var p : g_.params()) {
      const std::string& name = p.node().name;
      in_graph.insert(name);
      REQUIRE_MESSAGE(recorded.contains(name), name_, ": xgrad parameter '", name, "' has no PyTorch value");
      const Tensor& value = record("param." + name);
      REQUIRE_MESSAGE(value.shape() == p.shape(), name_, ": parameter '", name, "' has another shape in PyTorch");
      REQUIRE_MESSAGE(value.dtype() == p.dtype(), name_, ": parameter '", name, "' has another dtype in the fixture");
      g_.value(p) = value;
    }
    for (const std::string& name : recorded) {
      CHECK_MESSAGE(in_graph.contains(name), name_, ": PyTorch parameter '", name,
                    "' is no parameter of xgrad's graph");
    }
  }

  const FixtureSet& set_;
  std::string name_;
  Graph g_;
};

/// Checks every value of a case against PyTorch's record within the set's tolerance and names the
/// worst element of any that is off.
void check_values(const FixtureSet& set, const CaseResult& result) {
  for (const auto& [record, got] : result.values) {
    const xt::xarray<double> want = set.golden().f64(record);
    const Deviation d = deviation(got, want);
    CHECK_MESSAGE(d.same_shape, record, ": xgrad's shape ", shape_text(got.shape()), " differs from PyTorch's ",
                  shape_text(want.shape()));
    const double tolerance = case_tolerance(set, result.case_name);
    INFO(set.name, ": ", record, ": worst relative error ", d.worst, " (tolerance ", tolerance, ") at flat index ",
         d.at, " (xgrad ", d.got, ", PyTorch ", d.want, ")");
    CHECK(d.worst <= tolerance);
  }
}

/// Builds one case with `build(CaseGraph&) -> Built`, runs it and compares everything with PyTorch.
template <class Build>
void check_case(const FixtureSet& set, const std::string& case_name, Build build) {
  CaseGraph c(set, case_name);
  const Built built = build(c);
  check_values(set, c.run(built));
}

nn::LayerConfig layer_config(const Sizes& s, nn::NormStyle norm, nn::Activation activation) {
  return {s.d_model, s.heads, s.d_ff, kDropout, norm, activation, 1e-5};
}

models::ModelConfig model_config(const Sizes& s, nn::NormStyle norm, nn::Activation activation,
                                 models::Positions positions) {
  models::ModelConfig c;
  c.d_model = s.d_model;
  c.heads = s.heads;
  c.d_ff = s.d_ff;
  c.max_len = s.max_len;
  c.dropout = kDropout;
  c.norm = norm;
  c.activation = activation;
  c.positions = positions;
  c.scale_embedding = true;
  return c;
}

Built linear_case(CaseGraph& c, bool bias) { return Built{nn::linear(c.input("x"), "fc", c.sizes().linear_out, bias)}; }

Built embedding_case(CaseGraph& c) {
  const Var table = nn::embedding_table(c.graph(), "embed", c.sizes().embedding_vocab, c.sizes().d_model);
  return Built{nn::embed(table, c.input("tokens"), true)};
}

Built self_attention_case(CaseGraph& c, bool causal) {
  const Var x = c.input("x");
  const std::int64_t seq_len = x.shape()[1];
  const Var padding = c.padding("lengths", seq_len);
  const Var bias = causal ? c.causal(seq_len) + padding : padding;
  return Built{nn::self_attention(x, bias, "attn", {c.sizes().heads, kDropout})};
}

Built cross_attention_case(CaseGraph& c) {
  const Var x = c.input("x");
  const Var memory = c.input("memory");
  const Var bias = c.padding("memory_lengths", memory.shape()[1]);
  return Built{nn::cross_attention(x, memory, bias, "attn", {c.sizes().heads, kDropout})};
}

Built encoder_layer_case(CaseGraph& c, nn::NormStyle norm, nn::Activation activation) {
  const Var x = c.input("x");
  const Var bias = c.padding("lengths", x.shape()[1]);
  return Built{nn::encoder_layer(x, bias, "enc", layer_config(c.sizes(), norm, activation))};
}

Built decoder_layer_case(CaseGraph& c, nn::NormStyle norm, nn::Activation activation) {
  const Var x = c.input("x");
  const Var memory = c.input("memory");
  const std::int64_t tgt_len = x.shape()[1];
  const Var self_bias = c.causal(tgt_len) + c.padding("lengths", tgt_len);
  const Var memory_bias = c.padding("memory_lengths", memory.shape()[1]);
  return Built{nn::decoder_layer(x, memory, self_bias, memory_bias, "dec", layer_config(c.sizes(), norm, activation))};
}

/// (batch, sequence length) of the i32 input `name`: the models make their own inputs.
std::pair<std::int64_t, std::int64_t> batch_and_length(const CaseGraph& c, const std::string& name) {
  const Shape shape = c.record("input." + name).shape();
  return {shape[0], shape[1]};
}

Built encoder_classifier_case(CaseGraph& c) {
  const Sizes& s = c.sizes();
  const auto [batch, seq_len] = batch_and_length(c, "tokens");
  const models::EncoderClassifierConfig config{
      model_config(s, nn::NormStyle::post, nn::Activation::relu, models::Positions::sinusoidal), s.classifier_vocab,
      s.classes, 2, batch, seq_len};
  const models::EncoderClassifier m = models::encoder_classifier(c.graph(), config);
  return Built{m.logits, m.objective};
}

Built decoder_lm_case(CaseGraph& c, bool tied) {
  const Sizes& s = c.sizes();
  const auto [batch, seq_len] = batch_and_length(c, "tokens");
  // Tied: 2 pre-LN layers, sinusoidal positions; untied: 1 post-LN layer, learned positions.
  const models::DecoderLMConfig config =
      tied ? models::DecoderLMConfig{model_config(s, nn::NormStyle::pre, nn::Activation::gelu,
                                                  models::Positions::sinusoidal),
                                     s.lm_vocab, 2, true, batch, seq_len}
           : models::DecoderLMConfig{model_config(s, nn::NormStyle::post, nn::Activation::relu,
                                                  models::Positions::learned),
                                     s.untied_vocab, 1, false, batch, seq_len};
  const models::DecoderLM m = models::decoder_lm(c.graph(), config);
  return Built{m.logits, m.objective};
}

Built seq2seq_case(CaseGraph& c) {
  const Sizes& s = c.sizes();
  const auto [batch, src_len] = batch_and_length(c, "src_tokens");
  const std::int64_t tgt_len = batch_and_length(c, "tgt_tokens").second;
  const models::Seq2SeqConfig config{
      model_config(s, nn::NormStyle::post, nn::Activation::relu, models::Positions::sinusoidal), s.source_vocab,
      s.target_vocab, 2, 2, batch, src_len, tgt_len};
  const models::Seq2Seq m = models::seq2seq(c.graph(), config);
  return Built{m.logits, m.objective};
}

}  // namespace

using models::Positions;
using nn::Activation;
using nn::NormStyle;

TEST_CASE("PyTorch parity: linear") {
  for_each_set([](const FixtureSet& set) {
    check_case(set, "linear", [](CaseGraph& c) { return linear_case(c, true); });
  });
}

TEST_CASE("PyTorch parity: linear without bias") {
  for_each_set([](const FixtureSet& set) {
    check_case(set, "linear_nobias", [](CaseGraph& c) { return linear_case(c, false); });
  });
}

TEST_CASE("PyTorch parity: token embedding scaled by sqrt(dim)") {
  for_each_set([](const FixtureSet& set) { check_case(set, "embedding", embedding_case); });
}

TEST_CASE("PyTorch parity: sinusoidal positions table") {
  for_each_set([](const FixtureSet& set) {
    Graph g(0, set.dtype);
    const Var table = nn::sinusoidal_positions(g, set.sizes.max_len, set.sizes.d_model);
    Program p = compile(g, {table});
    p.run({});
    // Both sides round the same f64 table once, so it agrees to the last bit (or the floor) in either dtype.
    check_values(set, {"positions", {{"positions.output", p.get(table).cast(DType::f64).as<double>()}}});
  });
}

TEST_CASE("PyTorch parity: layer_norm") {
  for_each_set([](const FixtureSet& set) {
    check_case(set, "layer_norm", [](CaseGraph& c) { return Built{nn::layer_norm(c.input("x"), "norm")}; });
  });
}

TEST_CASE("PyTorch parity: feed_forward, relu and gelu") {
  for_each_set([](const FixtureSet& set) {
    for (Activation activation : {Activation::relu, Activation::gelu}) {
      const std::string name = activation == Activation::relu ? "feed_forward_relu" : "feed_forward_gelu";
      check_case(set, name, [&](CaseGraph& c) {
        return Built{nn::feed_forward(c.input("x"), "ff", c.sizes().d_ff, activation, kDropout)};
      });
    }
  });
}

TEST_CASE("PyTorch parity: self-attention with key padding") {
  for_each_set([](const FixtureSet& set) {
    check_case(set, "self_attention", [](CaseGraph& c) { return self_attention_case(c, false); });
  });
}

TEST_CASE("PyTorch parity: causal self-attention with key padding") {
  for_each_set([](const FixtureSet& set) {
    check_case(set, "causal_self_attention", [](CaseGraph& c) { return self_attention_case(c, true); });
  });
}

TEST_CASE("PyTorch parity: cross attention with memory padding") {
  for_each_set([](const FixtureSet& set) { check_case(set, "cross_attention", cross_attention_case); });
}

TEST_CASE("PyTorch parity: encoder layer, post-LN (relu) and pre-LN (gelu)") {
  for_each_set([](const FixtureSet& set) {
    check_case(set, "encoder_layer_post", [](CaseGraph& c) {
      return encoder_layer_case(c, NormStyle::post, Activation::relu);
    });
    check_case(set, "encoder_layer_pre", [](CaseGraph& c) {
      return encoder_layer_case(c, NormStyle::pre, Activation::gelu);
    });
  });
}

TEST_CASE("PyTorch parity: decoder layer, post-LN (gelu) and pre-LN (relu)") {
  for_each_set([](const FixtureSet& set) {
    check_case(set, "decoder_layer_post", [](CaseGraph& c) {
      return decoder_layer_case(c, NormStyle::post, Activation::gelu);
    });
    check_case(set, "decoder_layer_pre", [](CaseGraph& c) {
      return decoder_layer_case(c, NormStyle::pre, Activation::relu);
    });
  });
}

TEST_CASE("PyTorch parity: encoder classifier, 2 post-LN layers, masked-mean pooling, tanh pooler") {
  for_each_set([](const FixtureSet& set) { check_case(set, "encoder_classifier", encoder_classifier_case); });
}

TEST_CASE("PyTorch parity: decoder-only LM, 2 pre-LN layers + final norm, tied output, loss mask") {
  for_each_set([](const FixtureSet& set) {
    check_case(set, "decoder_lm", [](CaseGraph& c) { return decoder_lm_case(c, true); });
  });
}

TEST_CASE("PyTorch parity: decoder-only LM, 1 post-LN layer, untied head, learned positions") {
  for_each_set([](const FixtureSet& set) {
    check_case(set, "decoder_lm_untied", [](CaseGraph& c) { return decoder_lm_case(c, false); });
  });
}

TEST_CASE("PyTorch parity: encoder-decoder, 2 + 2 post-LN layers, source and target padding, loss mask") {
  for_each_set([](const FixtureSet& set) { check_case(set, "seq2seq", seq2seq_case); });
}

namespace {

/// The worst deviation from PyTorch over a case's values, in units of the set's tolerance, after
/// `tamper` changed the graph's values.
double worst_in_tolerances(const FixtureSet& set, const std::string& case_name,
                           const std::function<Built(CaseGraph&)>& build, const std::function<void(Graph&)>& tamper) {
  CaseGraph c(set, case_name);
  const Built built = build(c);
  const CaseResult result = c.run(built, tamper);
  double worst = 0.0;
  for (const auto& [record, got] : result.values) {
    worst = std::max(worst, deviation(got, set.golden().f64(record)).worst / case_tolerance(set, case_name));
  }
  return worst;
}

/// Adds `delta` to the first element of the parameter `name`.
std::function<void(Graph&)> nudge(const std::string& name, double delta) {
  return [=](Graph& g) {
    for (Var p : g.params()) {
      if (p.node().name != name) continue;
      xt::xarray<double> value = g.value(p).cast(DType::f64).as<double>();
      value.flat(0) += delta;
      g.value(p) = Tensor(std::move(value)).cast(p.dtype());
      return;
    }
    FAIL("no parameter named '", name, "'");
  };
}

}  // namespace

// The f32 tolerances must still separate xgrad's kernels from a slightly wrong model: with one
// weight 1e-3 off (as a bug in a single lane or tile would leave an element) the layer and the
// model cases must fail, while the untouched ones pass (the cases above).
TEST_CASE("PyTorch parity in f32: the check fails when a single weight is off by 1e-3") {
  SUBCASE("a layer") {
    const auto build = [](CaseGraph& c) { return encoder_layer_case(c, NormStyle::post, Activation::relu); };
    CHECK(worst_in_tolerances(kF32, "encoder_layer_post", build, {}) <= 1.0);
    CHECK(worst_in_tolerances(kF32, "encoder_layer_post", build, nudge("enc.linear2.weight", 1e-3)) > 1.0);
  }
  SUBCASE("a model") {
    CHECK(worst_in_tolerances(kF32, "seq2seq", seq2seq_case, {}) <= 1.0);
    CHECK(worst_in_tolerances(kF32, "seq2seq", seq2seq_case, nudge("output_proj.weight", 1e-3)) > 1.0);
  }
}
