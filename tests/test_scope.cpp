// Scopes: every node records the layer it was built in, pictures group by it, and nothing else
// changes (parameter names, values, results). The expected parameter counts are derived by hand from
// the layers' dimensions, not read back from the graph.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

#include <unistd.h>

#include <xgrad/xgrad.hpp>

#include "graph/seq2seq.hpp"

using namespace xg;

namespace {

/// The 2-layer encoder-decoder the pictures are checked on: d 16, 2 heads, d_ff 32, vocab 10, B 2,
/// source length 5, target length 6, post-LN (no final norm), sinusoidal positions.
struct Seq2SeqGraph {
  Graph g{1};
  models::Seq2Seq m = build(g);

  static models::Seq2Seq build(Graph& g) {
    models::Seq2SeqConfig c;
    c.model.d_model = 16;
    c.model.heads = 2;
    c.model.d_ff = 32;
    c.model.max_len = 6;
    c.src_vocab = c.tgt_vocab = 10;
    c.encoder_layers = c.decoder_layers = 2;
    c.batch = 2;
    c.src_len = 5;
    c.tgt_len = 6;
    return models::seq2seq(g, c);
  }
};

constexpr std::int64_t d = 16, d_ff = 32, vocab = 10;
constexpr std::int64_t attention_parameters = d * d * 4 + 4 * d;                    // q, k, v, out: (d, d) + bias d
constexpr std::int64_t feed_forward_parameters = d * d_ff + d_ff + d_ff * d + d;    // linear1, linear2 with biases
constexpr std::int64_t norm_parameters = 2 * d;                                     // gain and bias
constexpr std::int64_t encoder_layer_parameters = attention_parameters + feed_forward_parameters + 2 * norm_parameters;
constexpr std::int64_t decoder_layer_parameters = 2 * attention_parameters + feed_forward_parameters + 3 * norm_parameters;
static_assert(encoder_layer_parameters == 2224 && decoder_layer_parameters == 3344);

/// For each cluster of a DOT text, by label: the label of the cluster around it ("" at the top).
std::map<std::string, std::string> cluster_parents(const std::string& dot) {
  std::map<std::string, std::string> parents;
  std::vector<std::string> open;  // labels of the clusters around the current line; "" for other braces
  std::size_t pos = 0;
  bool awaiting_label = false;
  while (pos < dot.size()) {
    std::size_t end = dot.find('\n', pos);
    if (end == std::string::npos) end = dot.size();
    const std::string line = dot.substr(pos, end - pos);
    pos = end + 1;
    if (line.find("subgraph cluster_") != std::string::npos) {
      open.push_back({});
      awaiting_label = true;
    }
    if (awaiting_label && line.find("label=\"") != std::string::npos) {
      const std::size_t from = line.find("label=\"") + 7;
      open.back() = line.substr(from, line.find('"', from) - from);
      std::string parent;
      for (std::size_t i = open.size() - 1; i-- > 0;) {
        if (!open[i].empty()) {
          parent = open[i];
          break;
        }
      }
      parents[open.back()] = parent;
      awaiting_label = false;
    } else if (line.find_first_not_of(' ') != std::string::npos && line.substr(line.find_first_not_of(' ')) == "}") {
      if (!open.empty()) open.pop_back();
    }
  }
  return parents;
}

/// The label of the cluster a DOT line starting with `item` sits in.
std::string cluster_of(const std::string& dot, const std::string& item) {
  const std::size_t at = dot.find("  " + item);
  REQUIRE(at != std::string::npos);
  return cluster_parents(dot.substr(0, at) + "  subgraph cluster_probe {\n  label=\"probe\";\n")["probe"];
}

const LayerBox& box(const LayerView& view, std::string_view scope) {
  const LayerBox* found = nullptr;
  for (const LayerBox& b : view.boxes) {
    if (b.scope != scope) continue;
    REQUIRE_MESSAGE(found == nullptr, "two boxes for ", std::string(scope));
    found = &b;
  }
  REQUIRE_MESSAGE(found != nullptr, "no box for ", std::string(scope));
  return *found;
}

std::size_t box_index(const LayerView& view, std::string_view scope) { return static_cast<std::size_t>(&box(view, scope) - view.boxes.data()); }

bool has_edge(const LayerView& view, std::string_view from, std::string_view to, const Shape& shape) {
  for (const LayerEdge& e : view.edges) {
    if (e.from == box_index(view, from) && e.to == box_index(view, to)) {
      return std::find(e.shapes.begin(), e.shapes.end(), shape) != e.shapes.end();
    }
  }
  return false;
}

}  // namespace

TEST_CASE("scopes nest with '.', restore the outer scope when they end, also while an exception unwinds") {
  Graph g;
  const Var x = g.input("x", {2, 16});
  CHECK(g.current_scope().empty());
  CHECK(x.node().scope.empty());
  {
    const Scope encoder(g, "encoder");
    CHECK(exp(x).node().scope == "encoder");
    {
      const Scope layer(g, "0");
      CHECK(g.current_scope() == "encoder.0");
      CHECK(g.param("w", {2}, Init::zeros()).node().scope == "encoder.0");
      CHECK(g.scalar(1.0).node().scope == "encoder.0");
    }
    CHECK(g.current_scope() == "encoder");
    try {
      const Scope attn(g, "attn");
      CHECK(g.current_scope() == "encoder.attn");
      throw std::runtime_error("thrown inside a scope");
    } catch (const std::runtime_error&) {
    }
    CHECK(g.current_scope() == "encoder");
    // A stack whose layer refuses its input (rank 2, not (B, S, D)) leaves no scope of its own open.
    nn::LayerConfig narrow{.d_model = 16, .heads = 2, .d_ff = 8};
    CHECK_THROWS_AS(nn::encoder(x, std::nullopt, "stack", {narrow, 2, false}), ShapeError);
    CHECK(g.current_scope() == "encoder");
  }
  CHECK(g.current_scope().empty());
  CHECK(exp(x).node().scope.empty());
  CHECK_THROWS_AS(Scope(g, ""), ValueError);
}

TEST_CASE("a layer's scope follows its full name below the enclosing layer's; other names nest whole") {
  Graph g;
  {
    const Scope layer = Scope::layer(g, "encoder.0");
    CHECK(g.current_scope() == "encoder.0");
    {
      const Scope inside = Scope::layer(g, "encoder.0.self_attn");
      CHECK(g.current_scope() == "encoder.0.self_attn");
      const Scope deeper = Scope::layer(g, "encoder.0.self_attn.q_proj");
      CHECK(g.current_scope() == "encoder.0.self_attn.q_proj");
    }
    {
      const Scope same = Scope::layer(g, "encoder.0");  // a feed-forward block named after its layer
      CHECK(g.current_scope() == "encoder.0");
    }
    {
      const Scope elsewhere = Scope::layer(g, "encoder.01");  // not below "encoder.0": another layer's name
      CHECK(g.current_scope() == "encoder.0.encoder.01");
    }
    {
      const Scope absolute = Scope::at(g, "grad.x");
      CHECK(g.current_scope() == "grad.x");
    }
    CHECK(g.current_scope() == "encoder.0");
  }
  {
    const Scope model(g, "model");
    const Scope layer = Scope::layer(g, "layer");
    CHECK(g.current_scope() == "model.layer");
    const Scope norm = Scope::layer(g, "layer.norm2");
    CHECK(g.current_scope() == "model.layer.norm2");
  }
  CHECK(g.current_scope().empty());
  CHECK(scope_prefix("encoder.0.self_attn.q_proj", 2) == "encoder.0");
  CHECK(scope_prefix("encoder.0.self_attn.q_proj", 1) == "encoder");
  CHECK(scope_prefix("encoder.0", 3) == "encoder.0");
  CHECK(scope_prefix("loss", 2) == "loss");
}

TEST_CASE("nn layers build their nodes in their scope; parameter names do not change") {
  Graph g;
  const Var x = g.input("x", {2, 3, 8});
  const int first = g.size();
  nn::LayerConfig config{.d_model = 8, .heads = 2, .d_ff = 12};
  const Var y = [&] {
    const Scope model(g, "model");  // a user's scope around the layer: its names stay PyTorch's
    return nn::encoder_layer(x, std::nullopt, "layer", config);
  }();
  std::set<std::string> parameter_names;
  for (int id = first; id <= y.id(); ++id) {
    const Node& n = g.node(id);
    CHECK_MESSAGE(n.scope.starts_with("model.layer"), "node ", id, " ", n.op_name(), " in '", n.scope, "'");
    if (n.op_name() != "param") continue;
    parameter_names.insert(n.name);
    // Each parameter sits in the scope of the layer that registered it: its name without ".weight"/".bias".
    CHECK(n.scope == "model." + n.name.substr(0, n.name.rfind('.')));
  }
  const std::set<std::string> expected{
      "layer.self_attn.q_proj.weight", "layer.self_attn.q_proj.bias", "layer.self_attn.k_proj.weight",
      "layer.self_attn.k_proj.bias",   "layer.self_attn.v_proj.weight", "layer.self_attn.v_proj.bias",
      "layer.self_attn.out_proj.weight", "layer.self_attn.out_proj.bias", "layer.linear1.weight",
      "layer.linear1.bias",            "layer.linear2.weight",        "layer.linear2.bias",
      "layer.norm1.weight",            "layer.norm1.bias",            "layer.norm2.weight",
      "layer.norm2.bias"};
  CHECK(parameter_names == expected);
  CHECK(y.node().scope == "model.layer.norm2");  // post-LN: the layer ends in its second norm
}

TEST_CASE("gradient nodes are recorded under 'grad.' and the forward node's scope") {
  Graph g;
  const Var x = g.input("x", {4, 3});
  const Var y = sum(nn::linear(x, "proj", 2));
  const int forward_nodes = g.size();
  grad(g, y, g.params());
  std::set<std::string> scopes;
  for (int id = forward_nodes; id < g.size(); ++id) scopes.insert(g.node(id).scope);
  CHECK(scopes == std::set<std::string>{"grad", "grad.proj"});  // sum (and the seed) at the top, the rest in proj
  CHECK(g.current_scope().empty());
}

TEST_CASE("scopes are names only: the same model built inside a scope is the same graph, with the same results") {
  Seq2SeqGraph plain;
  Graph scoped_graph(1);
  const models::Seq2Seq scoped = [&] {
    const Scope outer(scoped_graph, "outer");
    return Seq2SeqGraph::build(scoped_graph);
  }();
  REQUIRE(scoped_graph.size() == plain.g.size());
  for (int id = 0; id < plain.g.size(); ++id) {
    const Node &a = plain.g.node(id), &b = scoped_graph.node(id);
    CHECK(a.op == b.op);
    CHECK(a.inputs == b.inputs);
    CHECK(a.shape == b.shape);
    CHECK(a.name == b.name);  // parameter (checkpoint) names included
    CHECK(b.scope == (a.scope.empty() ? "outer" : "outer." + a.scope));
  }
  const std::string path = (std::filesystem::temp_directory_path() / fmt::format("xg_scope_test_{}.safetensors", ::getpid())).string();
  save_checkpoint(path, plain.g);
  load_checkpoint(path, scoped_graph);  // every name, dtype and shape must match
  std::filesystem::remove(path);
  std::vector<Feed> feeds_plain, feeds_scoped;
  const xt::xarray<std::int32_t> src = {{3, 4, 5, 0, 0}, {6, 7, 8, 9, 1}}, tgt = {{1, 2, 3, 0, 0, 0}, {1, 4, 5, 6, 7, 8}};
  const xt::xarray<std::int32_t> src_len = {3, 5}, tgt_len = {3, 6};
  auto feeds = [&](const models::Seq2Seq& m) {
    return std::vector<Feed>{{m.src_tokens, src}, {m.src_lengths, src_len}, {m.tgt_tokens, tgt}, {m.tgt_lengths, tgt_len}, {m.labels, tgt}};
  };
  Program a = compile(plain.g, {plain.m.objective}), b = compile(scoped_graph, {scoped.objective});
  a.run(feeds(plain.m));
  b.run(feeds(scoped));
  CHECK(a.get<float>(plain.m.objective)() == b.get<float>(scoped.objective)());
}

TEST_CASE("DOT of a 2-layer encoder-decoder: nested clusters, one per scope, forward and backward") {
  Seq2SeqGraph s;
  const std::vector<Var> grads = grad(s.g, s.m.objective, s.g.params());
  std::vector<Var> outputs{s.m.objective};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  const std::string dot = to_dot(s.g, outputs);
  const std::map<std::string, std::string> parents = cluster_parents(dot);
  for (const char* stack : {"encoder", "decoder"}) {
    CHECK(parents.at(stack).empty());
    for (int layer : {0, 1}) {
      const std::string name = fmt::format("{}.{}", stack, layer);
      CHECK(parents.at(name) == stack);
      CHECK(parents.at(name + ".self_attn") == name);
      CHECK(parents.at(name + ".self_attn.q_proj") == name + ".self_attn");
      CHECK(parents.at(name + ".norm1") == name);
      CHECK(parents.at(name + ".linear2") == name);
      CHECK(parents.at("grad." + name) == "grad." + std::string(stack));
    }
  }
  CHECK(parents.at("decoder.1.cross_attn") == "decoder.1");
  CHECK(parents.at("decoder.1.norm3") == "decoder.1");
  CHECK(parents.count("encoder.2") == 0);
  CHECK(parents.count("encoder.0.cross_attn") == 0);
  for (const char* top : {"src_embed", "tgt_embed", "src_mask", "tgt_mask", "output_proj", "loss", "grad"}) CHECK(parents.at(top).empty());
  const Var q_weight = s.g.find("encoder.1.self_attn.q_proj.weight");
  CHECK(cluster_of(dot, fmt::format("n{} [", q_weight.id())) == "encoder.1.self_attn.q_proj");
  CHECK(cluster_of(dot, fmt::format("n{} [", s.m.src_tokens.id())).empty());  // inputs belong to no scope
}

TEST_CASE("layer view: one box per layer, with its parameter count and output shape") {
  Seq2SeqGraph s;
  const LayerView view = layer_view(s.g, {s.m.objective}, 2);
  std::vector<std::string> scopes;
  for (const LayerBox& b : view.boxes) {
    if (!b.scope.empty()) scopes.push_back(b.scope);
    else CHECK(s.g.node(b.nodes.front()).op_name() == "input");  // every other node is in some layer
  }
  CHECK(scopes == std::vector<std::string>{"src_mask", "tgt_mask", "src_embed", "encoder.0", "encoder.1", "tgt_embed",
                                           "decoder.0", "decoder.1", "output_proj", "loss"});
  for (const char* layer : {"encoder.0", "encoder.1"}) {
    CHECK(box(view, layer).parameters == encoder_layer_parameters);
    CHECK(box(view, layer).output_shapes == std::vector<Shape>{Shape{2, 5, d}});
  }
  for (const char* layer : {"decoder.0", "decoder.1"}) {
    CHECK(box(view, layer).parameters == decoder_layer_parameters);
    CHECK(box(view, layer).output_shapes == std::vector<Shape>{Shape{2, 6, d}});
  }
  CHECK(box(view, "src_embed").parameters == vocab * d);
  CHECK(box(view, "src_embed").output_shapes == std::vector<Shape>{Shape{2, 5, d}});
  CHECK(box(view, "output_proj").parameters == d * vocab + vocab);
  CHECK(box(view, "output_proj").output_shapes == std::vector<Shape>{Shape{2, 6, vocab}});
  CHECK(box(view, "src_mask").parameters == 0);
  CHECK(box(view, "src_mask").output_shapes == std::vector<Shape>{Shape{2, 1, 1, 5}});
  CHECK(box(view, "loss").output_shapes == std::vector<Shape>{Shape{}});  // the objective
  // The encoder's output is the memory of both decoder layers; the source mask reaches all four layers.
  CHECK(has_edge(view, "encoder.0", "encoder.1", Shape{2, 5, d}));
  CHECK(has_edge(view, "encoder.1", "decoder.0", Shape{2, 5, d}));
  CHECK(has_edge(view, "encoder.1", "decoder.1", Shape{2, 5, d}));
  CHECK_FALSE(has_edge(view, "encoder.0", "decoder.0", Shape{2, 5, d}));
  for (const char* layer : {"encoder.0", "encoder.1", "decoder.0", "decoder.1"}) CHECK(has_edge(view, "src_mask", layer, Shape{2, 1, 1, 5}));

  const LayerView deeper = layer_view(s.g, {s.m.objective}, 3);
  CHECK(box(deeper, "encoder.0.self_attn").parameters == attention_parameters);
  CHECK(box(deeper, "encoder.0.self_attn").output_shapes == std::vector<Shape>{Shape{2, 5, d}});
  CHECK(box(deeper, "decoder.1.cross_attn").parameters == attention_parameters);
  CHECK(box(deeper, "decoder.1.linear1").parameters == d * d_ff + d_ff);
  CHECK(box(deeper, "decoder.1.linear1").output_shapes == std::vector<Shape>{Shape{2, 6, d_ff}});
  CHECK(box(deeper, "decoder.1.norm3").parameters == norm_parameters);

  const std::string dot = to_dot(s.g, view);
  CHECK(dot.find(fmt::format("b{} [label=\"encoder.0\\n2,224 parameters\\nout (2, 5, 16)\"", box_index(view, "encoder.0"))) !=
        std::string::npos);
  CHECK(cluster_parents(dot).at("encoder").empty());
  CHECK(cluster_of(dot, fmt::format("b{} [", box_index(view, "decoder.1"))) == "decoder");
  CHECK_THROWS_AS(layer_view(s.g, {s.m.objective}, 0), ValueError);
}

TEST_CASE("layer view with gradients: the backward pass mirrors the layers under 'grad.'") {
  Seq2SeqGraph s;
  const std::vector<Var> grads = grad(s.g, s.m.objective, s.g.params());
  std::vector<Var> outputs{s.m.objective};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  const LayerView view = layer_view(s.g, outputs, 2);
  CHECK(box(view, "grad.encoder.0").gradient);
  CHECK(box(view, "grad.encoder.0").parameters == 0);
  CHECK_FALSE(box(view, "encoder.0").gradient);
  CHECK(box(view, "encoder.0").parameters == encoder_layer_parameters);
  CHECK(has_edge(view, "grad.encoder.1", "grad.encoder.0", Shape{2, 5, d}));  // the gradient flows backwards
}

TEST_CASE("Graphviz's dot accepts both pictures (when it is installed)") {
  if (std::system("command -v dot > /dev/null 2>&1") != 0) {
    MESSAGE("Graphviz's dot is not installed: the pictures are not rendered");
    return;
  }
  Seq2SeqGraph s;
  const std::vector<Var> grads = grad(s.g, s.m.objective, s.g.params());
  std::vector<Var> outputs{s.m.objective};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  const auto dir = std::filesystem::temp_directory_path();
  // Every node with the backward pass takes dot minutes to lay out: the node view is drawn forward only.
  const std::map<std::string, std::string> pictures{{"nodes", to_dot(s.g, {s.m.objective})},
                                                    {"layers", to_dot(s.g, layer_view(s.g, outputs, 2))},
                                                    {"sublayers", to_dot(s.g, layer_view(s.g, outputs, 3))}};
  for (const auto& [name, text] : pictures) {
    const auto dot_path = dir / fmt::format("xg_scope_test_{}_{}.dot", ::getpid(), name),
               svg_path = dir / fmt::format("xg_scope_test_{}_{}.svg", ::getpid(), name);
    std::ofstream(dot_path) << text;
    const int status = std::system(fmt::format("dot -Tsvg '{}' -o '{}' 2>&1", dot_path.string(), svg_path.string()).c_str());
    CHECK_MESSAGE(status == 0, name);
    CHECK(std::filesystem::file_size(svg_path) > 1000);
    std::filesystem::remove(dot_path);
    std::filesystem::remove(svg_path);
  }
}
