// Draws a small encoder-decoder model: writes the text IR, the compiled Program's listing (with
// arena offsets) and a Graphviz file, and renders it to SVG when `dot` is installed (apt-get install
// graphviz). The picture is the layer view by default (one box per layer with its parameter count
// and output shapes); --view nodes draws every node, grouped into clusters by layer.
#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <xgrad/xgrad.hpp>

#include "graph/seq2seq.hpp"

using namespace xg;

int main(int argc, char** argv) {
  std::string dir = ".", view = "layers";
  int layers = 2, depth = 2;
  bool gradients = false;
  CLI::App app{"Draws a small encoder-decoder model (and its gradients) as Graphviz pictures.", "graph_picture"};
  app.option_defaults()->always_capture_default();
  app.add_option("dir,--out-dir", dir, "directory the files are written to")->check(CLI::ExistingDirectory);
  app.add_option("--view", view, "layers: one box per layer; nodes: every node, clustered by layer")
      ->check(CLI::IsMember({"layers", "nodes"}));
  app.add_option("--depth", depth, "scope levels a layer box spans (2: encoder.0, 3: encoder.0.self_attn)")
      ->check(CLI::PositiveNumber);
  app.add_option("--layers", layers, "encoder and decoder layers")->check(CLI::PositiveNumber);
  app.add_flag("--gradients", gradients, "draw the backward pass too");
  CLI11_PARSE(app, argc, argv);

  Graph g(1);
  models::Seq2SeqConfig c;
  c.model.d_model = 16;
  c.model.heads = 2;
  c.model.d_ff = 32;
  c.model.max_len = 6;
  c.src_vocab = c.tgt_vocab = 10;
  c.encoder_layers = c.decoder_layers = layers;
  c.batch = 2;
  c.src_len = 5;
  c.tgt_len = 6;
  const models::Seq2Seq m = models::seq2seq(g, c);
  const std::vector<Var> grads = grad(g, m.objective, g.params());
  std::vector<Var> outputs{m.objective};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  const Program program = compile(g, outputs);

  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = fmt::format("{}/{}", dir, name);
    std::ofstream out(path);
    out << text;
    if (!out) {
      fmt::print(stderr, "graph_picture: cannot write {}\n", path);
      std::exit(1);
    }
    fmt::print("wrote {} ({} lines)\n", path, std::count(text.begin(), text.end(), '\n'));
    return path;
  };
  write("seq2seq.ir.txt", to_text(g));
  write("seq2seq.program.txt", program.dump());
  const std::vector<Var> drawn = gradients ? outputs : std::vector<Var>{m.objective};
  const LayerView boxes = layer_view(g, drawn, depth);
  const std::string dot = write("seq2seq.dot", view == "layers" ? to_dot(g, boxes) : to_dot(g, drawn));
  int gradient_nodes = 0;
  for (int id = 0; id < g.size(); ++id) gradient_nodes += g.is_gradient(id) ? 1 : 0;
  fmt::print("{} nodes ({} forward, {} gradient), {} kernel calls, arena {} bytes\n", g.size(), g.size() - gradient_nodes,
             gradient_nodes, program.steps(), program.memory().arena_bytes);
  if (view == "layers") fmt::print("layer view: {} boxes at depth {}\n", boxes.boxes.size(), depth);
  if (std::system("command -v dot > /dev/null 2>&1") != 0) {
    fmt::print("Graphviz's dot is not installed; render with: dot -Tsvg {} -o seq2seq.svg\n", dot);
    return 0;
  }
  const std::string svg = fmt::format("{}/seq2seq.svg", dir);
  if (std::system(fmt::format("dot -Tsvg '{}' -o '{}'", dot, svg).c_str()) != 0) {
    fmt::print(stderr, "graph_picture: dot failed\n");
    return 1;
  }
  fmt::print("rendered {}\n", svg);
}
