// The catalogue of bad input: every entry is something a user can get wrong, the xg::Error subclass
// it must raise, and a fragment its message must contain to name what was wrong and where. Nothing
// crashes, nothing is silently accepted. (test_errors.cpp holds the first, longer-form cases.)
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include <xgrad/xgrad.hpp>

#include "graph/decoder_lm.hpp"
#include "graph/seq2seq.hpp"

using namespace xg;

namespace {

struct BadInput {
  std::string area;
  std::string what;
  std::function<void()> action;
  std::string expected_type;
  std::string fragment;
};

std::string type_of(const Error& e) {
  if (dynamic_cast<const ShapeError*>(&e)) return "ShapeError";
  if (dynamic_cast<const DTypeError*>(&e)) return "DTypeError";
  if (dynamic_cast<const ValueError*>(&e)) return "ValueError";
  if (dynamic_cast<const IndexError*>(&e)) return "IndexError";
  if (dynamic_cast<const FeedError*>(&e)) return "FeedError";
  if (dynamic_cast<const GradientError*>(&e)) return "GradientError";
  if (dynamic_cast<const IOError*>(&e)) return "IOError";
  if (dynamic_cast<const CheckpointError*>(&e)) return "CheckpointError";
  if (dynamic_cast<const NonFiniteError*>(&e)) return "NonFiniteError";
  return "Error";
}

using F = xt::xarray<float>;
using I = xt::xarray<std::int32_t>;

/// Compiles `outputs` and runs it once on `feeds`.
void run_once(Graph& g, const std::vector<Var>& outputs, const std::vector<Feed>& feeds, bool check_finite = false) {
  Program p = compile(g, outputs);
  p.set_check_finite(check_finite);
  p.run(feeds);
}

std::string temp_file(const std::string& name, const std::string& contents) {
  const auto path = std::filesystem::temp_directory_path() / ("xgrad-catalogue-" + name);
  std::ofstream(path, std::ios::binary) << contents;
  return path.string();
}

std::string safetensors_bytes(const std::string& header, std::size_t data_bytes) {
  std::string bytes(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  return bytes + header + std::string(data_bytes, '\0');
}

std::vector<BadInput> catalogue() {
  std::vector<BadInput> c;
  auto add_case = [&](std::string area, std::string what, std::function<void()> f, std::string type, std::string fragment) {
    c.push_back({std::move(area), std::move(what), std::move(f), std::move(type), std::move(fragment)});
  };

  // ---- graph building ----
  add_case("build", "input with a negative extent", [] { Graph g; g.input("x", {2, -3}); }, "ShapeError", "negative extent");
  add_case("build", "parameter named twice", [] { Graph g; g.param("w", {2}, Init::zeros()); g.param("w", {3}, Init::zeros()); },
           "ValueError", "'w' is already used");
  add_case("build", "input without a name", [] { Graph g; g.input("", {2}); }, "ValueError", "need a name");
  add_case("build", "integer parameter", [] { Graph g; g.param("w", {2}, Init::zeros(), DType::i32); }, "DTypeError", "f32 or f64");
  add_case("build", "integer graph float type", [] { Graph g(0, DType::i32); }, "DTypeError", "float type");
  add_case("build", "uniform init with low > high", [] { Graph g; g.param("w", {2}, Init::uniform(1.0, 0.0)); }, "ValueError", "low <= high");
  add_case("build", "empty Var used", [] { exp(Var{}); }, "ValueError", "empty Var");
  add_case("build", "sub of (3, 2) and (2, 3)", [] { Graph g; sub(g.input("a", {3, 2}), g.input("b", {2, 3})); }, "ShapeError", "(3, 2)");
  add_case("build", "where with a non-broadcasting condition",
           [] { Graph g; where(g.input("c", {4}), g.input("a", {2, 3}), g.input("b", {2, 3})); }, "ShapeError", "where");
  add_case("build", "log of an i32 tensor", [] { Graph g; log(g.input("t", {2}, DType::i32)); }, "DTypeError", "log");
  add_case("build", "f64 + f32", [] { Graph g; add(g.input("a", {2}, DType::f64), g.input("b", {2})); }, "DTypeError", "f64");
  add_case("build", "sum over axis 5 of a matrix", [] { Graph g; sum(g.input("x", {2, 3}), {5}); }, "ValueError", "axis");
  add_case("build", "permute with a repeated axis", [] { Graph g; permute(g.input("x", {2, 3}), {0, 0}); }, "ValueError", "permute");
  add_case("build", "reshape (2, 3) to (4, -1)", [] { Graph g; reshape(g.input("x", {2, 3}), {4, -1}); }, "ShapeError", "reshape");
  add_case("build", "broadcast_to a smaller shape", [] { Graph g; broadcast_to(g.input("x", {2, 3}), {3}); }, "ShapeError", "broadcast_to");
  add_case("build", "slice with step 0", [] { Graph g; slice(g.input("x", {4}), 0, 0, 4, 0); }, "ValueError", "step");
  add_case("build", "squeeze of an axis of extent 3", [] { Graph g; squeeze(g.input("x", {3, 1}), 0); }, "ShapeError", "squeeze");
  add_case("build", "matmul of a scalar", [] { Graph g; matmul(g.input("a", {}), g.input("b", {2, 2})); }, "ShapeError", "rank >= 1");
  add_case("build", "layer_norm over more axes than x has", [] { Graph g; layer_norm(g.input("x", {4}), 2); }, "ValueError", "last 2 axes");
  add_case("build", "layer_norm with eps 0", [] { Graph g; layer_norm(g.input("x", {4}), 1, 0.0); }, "ValueError", "eps");
  add_case("build", "embedding indexed by floats", [] { Graph g; embedding(g.input("t", {5, 2}), g.input("i", {3})); }, "DTypeError", "embedding");
  add_case("build", "cross_entropy with float labels", [] { Graph g; cross_entropy(g.input("z", {2, 5}), g.input("y", {2})); },
           "DTypeError", "cross_entropy");
  add_case("build", "label smoothing of 1.5", [] {
    Graph g;
    CrossEntropyOptions o;
    o.label_smoothing = 1.5;
    cross_entropy(g.input("z", {2, 5}), g.input("y", {2}, DType::i32), o);
  }, "ValueError", "label_smoothing");
  add_case("build", "mean_over_mask without a mask", [] {
    Graph g;
    CrossEntropyOptions o;
    o.reduction = Reduction::mean_over_mask;
    cross_entropy(g.input("z", {2, 5}), g.input("y", {2}, DType::i32), o);
  }, "ValueError", "options.mask");
  add_case("build", "sequence_mask of a negative length", [] { Graph g; sequence_mask(g.input("l", {2}, DType::i32), -1, DType::f32); },
           "ValueError", "negative sequence length");
  add_case("build", "attention heads that do not divide d_model", [] { Graph g; nn::self_attention(g.input("x", {1, 2, 6}), {}, "attn", {4, 0.0}); },
           "ValueError", "divisible by 4 heads");
  add_case("build", "attention mask that does not broadcast to the scores", [] {
    Graph g;
    const Var q = g.input("q", {2, 4, 5, 8}), kv = g.input("kv", {2, 4, 6, 8});
    scaled_dot_product_attention(q, kv, kv, g.input("mask", {5, 5}), 0.35);
  }, "ShapeError", "does not broadcast to the scores' shape (B, H, Sq, Sk) = (2, 4, 5, 6)");
  add_case("build", "positions longer than the table", [] { Graph g; nn::add_positions(g.input("x", {1, 9, 4}), nn::sinusoidal_positions(g, 8, 4)); },
           "ShapeError", "exceeds the 8 positions");
  add_case("build", "decoder layer of the wrong width", [] {
    Graph g;
    nn::decoder_layer(g.input("x", {1, 2, 6}), g.input("m", {1, 2, 6}), {}, {}, "dec", {8, 2, 16, 0.0, nn::NormStyle::post, nn::Activation::relu, 1e-5});
  }, "ShapeError", "expected (B, S, 8)");
  add_case("build", "a model with the same input names twice in one graph", [] {
    Graph g;
    models::decoder_lm(g, {});
    models::decoder_lm(g, {});
  }, "ValueError", "'tokens' is already used");

  // ---- autodiff and compile ----
  add_case("grad", "gradient of a non-scalar without a seed", [] { Graph g; const Var x = g.param("x", {3}, Init::zeros()); grad(g, exp(x), {x}); },
           "GradientError", "needs a seed");
  add_case("grad", "seed of the wrong shape", [] {
    Graph g;
    const Var x = g.param("x", {3}, Init::zeros());
    grad(g, exp(x), {x}, g.param("s", {2}, Init::ones()));
  }, "GradientError", "must match");
  add_case("grad", "gradient with respect to labels", [] {
    Graph g;
    const Var y = g.input("y", {2}, DType::i32);
    grad(g, sum(cast(y, DType::f32)), {y});
  }, "GradientError", "integer values have no gradient");
  add_case("compile", "no outputs", [] { Graph g; compile(g, {}); }, "ValueError", "no outputs");
  add_case("compile", "an output of another graph", [] { Graph g, h; compile(g, {h.input("x", {2})}); }, "ValueError", "does not belong");

  // ---- feeds ----
  add_case("feed", "missing feed", [] { Graph g; const Var x = g.input("x", {2}); run_once(g, {exp(x)}, {}); }, "FeedError", "missing feed for input 'x'");
  add_case("feed", "feed of shape (3,) for (2,)", [] {
    Graph g;
    const Var x = g.input("x", {2});
    const F v{1, 2, 3};
    run_once(g, {exp(x)}, {{x, v}});
  }, "FeedError", "'x'");
  add_case("feed", "i32 feed for an f32 input", [] {
    Graph g;
    const Var x = g.input("x", {2});
    const I v{1, 2};
    run_once(g, {exp(x)}, {{x, v}});
  }, "FeedError", "i32");
  add_case("feed", "feed for an input of another graph", [] {
    Graph g, other;
    const Var x = g.input("x", {2}), q = other.input("q", {2});
    const F v{1, 2};
    run_once(g, {exp(x)}, {{x, v}, {q, v}});
  }, "FeedError", "not an input of this program");
  add_case("feed", "a parameter replaced by one of another shape", [] {
    Graph g;
    const Var w = g.param("w", {2}, Init::zeros());
    Program p = compile(g, {exp(w)});
    g.value(w) = Tensor(F{1, 2, 3});
    p.run({});
  }, "ValueError", "it must stay f32 (2,)");

  // ---- labels, tokens and lengths out of range at run time ----
  auto ce_run = [](I labels) {
    Graph g;
    const Var z = g.input("z", {2, 3});
    const Var y = g.input("y", {2}, DType::i32);
    const F zv = xt::zeros<float>({2, 3});
    run_once(g, {cross_entropy(z, y)}, {{z, zv}, {y, labels}});
  };
  add_case("range", "label 3 with 3 classes", [=] { ce_run(I{0, 3}); }, "IndexError", "outside [0, 3)");
  add_case("range", "label -1 (not the ignore index)", [=] { ce_run(I{-1, 0}); }, "IndexError", "-1");
  add_case("range", "token id equal to the vocabulary size", [] {
    Graph g;
    const Var t = g.input("t", {2}, DType::i32);
    const I tv{1, 9};
    run_once(g, {nn::embed(nn::embedding_table(g, "embed", 9, 4), t)}, {{t, tv}});
  }, "IndexError", "9");
  add_case("range", "a length above the sequence length", [] {
    Graph g;
    const Var l = g.input("l", {2}, DType::i32);
    const I lv{2, 7};
    run_once(g, {sequence_mask(l, 5, DType::f32)}, {{l, lv}});
  }, "IndexError", "length 7");
  add_case("range", "a negative length in a model's key padding mask", [] {
    Graph g;
    const Var l = g.input("l", {2}, DType::i32);
    const I lv{-2, 3};
    run_once(g, {nn::key_padding_bias(l, 5, DType::f32)}, {{l, lv}});
  }, "IndexError", "length -2");
  add_case("range", "sequences longer than the padded length", [] {
    const std::vector<std::vector<std::int32_t>> seqs{{1, 2, 3}};
    pad_sequences(seqs, 2, 0);
  }, "ValueError", "more than the 2 positions");

  // ---- NaN and Inf detection mode ----
  add_case("finite", "log of a negative number", [] {
    Graph g;
    const Var x = g.input("x", {3});
    const F v{1, -1, 2};
    run_once(g, {exp(log(x) * 2.0)}, {{x, v}}, true);
  }, "NonFiniteError", "(fused_elementwise: log, mul, exp) produced nan at flat index 1");
  add_case("finite", "exp overflowing f32", [] {
    Graph g;
    const Var x = g.input("x", {2});
    const F v{1, 200};
    run_once(g, {sum(exp(x))}, {{x, v}}, true);
  }, "NonFiniteError", "(exp) produced inf at flat index 1");
  add_case("finite", "division by zero", [] {
    Graph g;
    const Var x = g.input("x", {2});
    const F v{0, 1};
    run_once(g, {1.0 / x}, {{x, v}}, true);
  }, "NonFiniteError", "produced inf at flat index 0");
  add_case("finite", "a NaN fed in", [] {
    Graph g;
    const Var x = g.input("x", {2});
    const F v{std::numeric_limits<float>::quiet_NaN(), 1};
    run_once(g, {exp(x)}, {{x, v}}, true);
  }, "NonFiniteError", "input 'x') was fed nan");
  add_case("finite", "a parameter holding infinity", [] {
    Graph g;
    const Var w = g.param("w", {2}, Init::zeros());
    g.value(w).as<float>()(1) = -std::numeric_limits<float>::infinity();
    run_once(g, {exp(w)}, {}, true);
  }, "NonFiniteError", "(param 'w') holds -inf");

  // ---- checkpoints ----
  add_case("checkpoint", "a file that does not exist", [] { Graph g; load_checkpoint("/nonexistent/x.safetensors", g); }, "IOError", "cannot open");
  add_case("checkpoint", "saving into a directory that does not exist", [] {
    Graph g;
    g.param("w", {2}, Init::zeros());
    save_checkpoint("/nonexistent/dir/x.safetensors", g);
  }, "IOError", "temporary file");
  add_case("checkpoint", "a text file", [] { Graph g; load_checkpoint(temp_file("text", "hello"), g); }, "CheckpointError", "too short");
  add_case("checkpoint", "a parameter missing from the file", [] {
    Graph g;
    g.param("w", {2}, Init::zeros());
    load_checkpoint(temp_file("empty.safetensors", safetensors_bytes("{}      ", 0)), g);
  }, "CheckpointError", "missing parameter 'w'");
  add_case("checkpoint", "a tensor of another shape", [] {
    Graph g;
    g.param("w", {2}, Init::zeros());
    load_checkpoint(temp_file("shape.safetensors", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", 12)), g);
  }, "CheckpointError", "'w' is f32 (3,) in the file but f32 (2,)");
  add_case("checkpoint", "optimizer state of another optimizer", [] {
    Graph g;
    const Var w = g.param("w", {2}, Init::zeros());
    optim::SGD sgd(g, {w}, {0.9});
    const std::string path = temp_file("sgd.safetensors", "");
    save_checkpoint(path, g, {&sgd, 0, {}});
    optim::Adam adam(g, {w});
    load_checkpoint(path, g, &adam);
  }, "CheckpointError", "SGD's, not Adam's");
  add_case("checkpoint", "a header claiming a terabyte", [] {
    std::string bytes(8, '\0');
    const std::uint64_t n = std::uint64_t{1} << 40;
    std::memcpy(bytes.data(), &n, 8);
    Graph g;
    load_checkpoint(temp_file("huge.safetensors", bytes + "{}"), g);
  }, "CheckpointError", "exceeds the limit");
  add_case("checkpoint", "an optimizer given a parameter of another graph", [] {
    Graph g, h;
    optim::Adam adam(g, {h.param("w", {2}, Init::zeros())});
  }, "ValueError", "not a parameter of this graph");

  // ---- sizes too large to count in 64 bits (no memory is asked for before the refusal) ----
  constexpr std::int64_t big = std::int64_t{1} << 40;
  add_case("size", "a (2^40, 2^40) input", [] { Graph g; g.input("a", {big, big}); }, "ShapeError",
           "node 0 (input 'a'): shape (1099511627776, 1099511627776) of f32 is too large");
  add_case("size", "an f32 parameter of 2^64 bytes", [] { Graph g; g.param("w", {std::int64_t{1} << 31, std::int64_t{1} << 31}, Init::zeros()); },
           "ShapeError", "node 0 (param 'w')");
  add_case("size", "an empty input whose other extents overflow", [] { Graph g; g.input("e", {0, big, big}); }, "ShapeError", "too large");
  add_case("size", "(2^40, 1) + (1, 2^40)", [] { Graph g; add(g.input("a", {big, 1}), g.input("b", {1, big})); }, "ShapeError",
           "node 2 (add): shape (1099511627776, 1099511627776)");
  add_case("size", "matmul whose broadcast batch axes overflow", [] {
    Graph g;
    matmul(g.input("a", {big, 1, 2, 2}), g.input("b", {1, big, 2, 2}));
  }, "ShapeError", "(matmul): shape (1099511627776, 1099511627776, 2, 2)");
  add_case("size", "reshape to (2^40, 2^40, -1)", [] { Graph g; reshape(g.input("x", {2, 3}), {big, big, -1}); }, "ShapeError",
           "reshape of node 0 (input 'x'): target shape");
  add_case("size", "concat whose extents add past 64 bits", [] {
    Graph g;
    const Var v = g.input("v", {(std::int64_t{1} << 61) - 1});
    concat({v, v, v, v, v}, 0);
  }, "ShapeError", "add up to more than 64 bits");
  add_case("size", "compile of buffers past what an arena addresses", [] {
    Graph g;
    const Var x = g.input("x", {std::int64_t{1} << 60}), y = g.input("y", {std::int64_t{1} << 60});
    compile(g, {x + y});
  }, "ShapeError", "compile: the buffers up to node 1 (input 'y')");
  add_case("size", "a sinusoidal table of 2^80 positions", [] { Graph g; nn::sinusoidal_positions(g, big, big); }, "ShapeError",
           "sinusoidal_positions: shape (1099511627776, 1099511627776) is too large");
  add_case("size", "padding to 2^63 - 1 positions", [] {
    const std::vector<std::vector<std::int32_t>> seqs{{1}, {2}};
    pad_sequences(seqs, std::numeric_limits<std::int64_t>::max(), 0);
  }, "ShapeError", "pad_sequences");
  add_case("size", "saving a tensor of 2^80 elements", [] {
    const float v = 0;
    const std::array<std::size_t, 2> shape{std::size_t{1} << 40, std::size_t{1} << 40};
    const std::vector<std::pair<std::string, TensorRef>> tensors{{"w", TensorRef(&v, DType::f32, shape)}};
    save_safetensors(temp_file("never.safetensors", ""), tensors);
  }, "ShapeError", "tensor 'w' (f32): shape (1099511627776, 1099511627776) is too large");
  add_case("size", "a checkpoint claiming a tensor of 2^80 elements", [] {
    Graph g;
    load_checkpoint(temp_file("overflow.safetensors",
                              safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,0]}})", 0)), g);
  }, "CheckpointError", "overflows");
  return c;
}

}  // namespace

TEST_CASE("the bad-input catalogue: every entry raises its error type with a message naming the problem") {
  const std::vector<BadInput> entries = catalogue();
  // README.md ("Examples and tests") states this number: change both together.
  CHECK(entries.size() == 71);
  for (const BadInput& e : entries) {
    CAPTURE(e.area);
    CAPTURE(e.what);
    std::string type = "no exception", message;
    try {
      e.action();
    } catch (const Error& error) {
      type = type_of(error);
      message = error.what();
    }
    INFO("message: ", message);
    CHECK(type == e.expected_type);
    CHECK(message.find(e.fragment) != std::string::npos);
  }
}
