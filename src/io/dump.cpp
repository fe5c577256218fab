#include "xgrad/dump.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "xgrad/attr_fields.hpp"
#include "xgrad/error.hpp"
#include "xgrad/format.hpp"

namespace xg {

namespace {

std::string label_of(const Node& n) {
  std::string label{n.op_name()};
  if (!n.name.empty()) label += fmt::format("\\n{}", n.name);
  return label + fmt::format("\\n{} {}", n.dtype, n.shape);
}

std::string escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"') out += '\\';
    out += c;
  }
  return out;
}

bool is_leaf(const Node& n) { return n.inputs.empty(); }
bool is_input(const Node& n) { return n.op_name() == "input"; }

/// The nodes `outputs` depend on, every node when it is empty; `is_output` marks the outputs.
std::vector<bool> shown_nodes(const Graph& graph, const std::vector<Var>& outputs, std::vector<bool>& is_output) {
  std::vector<bool> shown(static_cast<std::size_t>(graph.size()), outputs.empty());
  is_output.assign(static_cast<std::size_t>(graph.size()), false);
  for (Var v : outputs) {
    if (!v.valid() || &v.graph() != &graph) throw ValueError(fmt::format("to_dot: output {} belongs to another graph", v.describe()));
    shown[static_cast<std::size_t>(v.id())] = is_output[static_cast<std::size_t>(v.id())] = true;
  }
  for (int id = graph.size() - 1; id >= 0; --id) {
    if (!shown[static_cast<std::size_t>(id)]) continue;
    for (int in : graph.node(id).inputs) shown[static_cast<std::size_t>(in)] = true;
  }
  return shown;
}

/// Scopes as nested DOT clusters: each item (a line of DOT) goes into the cluster of its path, and
/// each cluster into that of its parent path, so "encoder.0.self_attn" sits inside "encoder.0",
/// inside "encoder". Clusters appear in the order of their first item.
class ClusterTree {
 public:
  void add(std::string_view path, std::string item) { cluster(path).items.push_back(std::move(item)); }

  std::string emit() const { return emit(root_, 1); }

 private:
  struct Cluster {
    std::string path;
    std::vector<std::string> items;
    std::vector<std::size_t> children;  // indices into clusters_
  };

  Cluster& cluster(std::string_view path) {
    if (path.empty()) return root_;
    if (auto it = index_.find(std::string(path)); it != index_.end()) return clusters_[it->second];
    const std::size_t dot = path.rfind('.');
    Cluster& parent = cluster(dot == std::string_view::npos ? std::string_view{} : path.substr(0, dot));
    const std::size_t index = clusters_.size();
    parent.children.push_back(index);  // before emplace_back: `parent` may live in clusters_
    clusters_.push_back(Cluster{std::string(path), {}, {}});
    index_.emplace(std::string(path), index);
    return clusters_[index];
  }

  std::string emit(const Cluster& c, int indent) const {
    const std::string pad(static_cast<std::size_t>(2 * indent), ' ');
    std::string out;
    for (const std::string& item : c.items) out += pad + item + "\n";
    for (std::size_t child : c.children) {
      const Cluster& k = clusters_[child];
      const bool gradient = k.path == "grad" || k.path.starts_with("grad.");
      out += fmt::format("{}subgraph cluster_{} {{\n{}  label=\"{}\"; fontsize=11; style=rounded; color=\"{}\";\n", pad, child,
                         pad, escape(k.path), gradient ? "#e69138" : "#6d9eeb");
      out += emit(k, indent + 1);
      out += pad + "}\n";
    }
    return out;
  }

  Cluster root_;
  std::vector<Cluster> clusters_;  // indices stay valid as clusters are added
  std::map<std::string, std::size_t, std::less<>> index_;
};

std::string header() {
  return "digraph xgrad {\n  rankdir=TB;\n  graph [fontname=\"Helvetica\"];\n"
         "  node [fontname=\"Helvetica\", fontsize=10, style=filled];\n";
}

std::string node_style(const Graph& graph, int id) {
  const std::string_view op = graph.node(id).op_name();
  if (op == "input") return "shape=ellipse, fillcolor=\"#cfe2f3\"";
  if (op == "param") return "shape=box, fillcolor=\"#fff2cc\"";
  if (op == "constant") return "shape=box, fillcolor=\"#eeeeee\"";
  if (graph.is_gradient(id)) return "shape=box, fillcolor=\"#f9cb9c\"";
  return "shape=box, fillcolor=\"#ffffff\"";
}

/// The box a node belongs to at `depth`: its scope cut there ("grad." and the forward scope it
/// mirrors cut there, for a gradient node), "" for a node outside every scope and for inputs.
std::string box_scope(const Node& n, int depth) {
  if (n.scope.empty() || is_input(n)) return {};
  if (n.scope == "grad") return n.scope;
  if (n.scope.starts_with("grad.")) return "grad." + std::string(scope_prefix(std::string_view(n.scope).substr(5), depth));
  return std::string(scope_prefix(n.scope, depth));
}

void add_distinct(std::vector<Shape>& shapes, const Shape& shape) {
  if (std::find(shapes.begin(), shapes.end(), shape) == shapes.end()) shapes.push_back(shape);
}

std::string shape_list(const std::vector<Shape>& shapes) {
  std::vector<std::string> parts;
  for (const Shape& s : shapes) parts.push_back(fmt::format("{}", s));
  return fmt::format("{}", fmt::join(parts, " "));
}

/// "12,345": parameter counts read at a glance.
std::string grouped(std::int64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

std::string to_text(const Graph& graph) {
  std::string out;
  for (int id = 0; id < graph.size(); ++id) {
    const Node& n = graph.node(id);
    std::vector<std::string> inputs;
    for (int in : n.inputs) inputs.push_back(fmt::format("%{}", in));
    const std::string attrs = attrs_text(n.attrs);
    out += fmt::format("%{} = {}({}) {} {}{}{}{}{}\n", id, n.op_name(), fmt::join(inputs, ", "), n.dtype, n.shape,
                       attrs.empty() ? "" : fmt::format(" {{{}}}", attrs), n.name.empty() ? "" : fmt::format(" '{}'", n.name),
                       n.scope.empty() ? "" : fmt::format(" in {}", n.scope),
                       graph.is_gradient(id) ? " [grad]" : "");
  }
  return out;
}

std::string to_dot(const Graph& graph, const std::vector<Var>& outputs) {
  std::vector<bool> is_output;
  const std::vector<bool> shown = shown_nodes(graph, outputs, is_output);
  ClusterTree clusters;
  for (int id = 0; id < graph.size(); ++id) {
    if (!shown[static_cast<std::size_t>(id)]) continue;
    const Node& n = graph.node(id);
    std::string style = node_style(graph, id);
    if (is_output[static_cast<std::size_t>(id)]) style += ", penwidth=2.5";
    clusters.add(n.scope, fmt::format("n{} [label=\"%{} {}\", {}];", id, id, escape(label_of(n)), style));
  }
  std::string out = header() + clusters.emit();
  for (int id = 0; id < graph.size(); ++id) {
    if (!shown[static_cast<std::size_t>(id)]) continue;
    for (int in : graph.node(id).inputs) {
      out += fmt::format("  n{} -> n{}{};\n", in, id, graph.is_gradient(id) ? " [color=\"#e69138\"]" : "");
    }
  }
  out += "  subgraph cluster_legend { label=\"legend\"; fontsize=10;\n"
         "    legend_in [label=\"input\", shape=ellipse, fillcolor=\"#cfe2f3\"];\n"
         "    legend_param [label=\"parameter\", shape=box, fillcolor=\"#fff2cc\"];\n"
         "    legend_fwd [label=\"forward op\", shape=box, fillcolor=\"#ffffff\"];\n"
         "    legend_grad [label=\"gradient op\", shape=box, fillcolor=\"#f9cb9c\"];\n  }\n}\n";
  return out;
}

LayerView layer_view(const Graph& graph, const std::vector<Var>& outputs, int depth) {
  if (depth < 1) throw ValueError(fmt::format("layer_view: depth must be at least 1, got {}", depth));
  std::vector<bool> is_output;
  const std::vector<bool> shown = shown_nodes(graph, outputs, is_output);
  LayerView view;
  std::vector<std::size_t> box_of(static_cast<std::size_t>(graph.size()), 0);
  std::map<std::string, std::size_t, std::less<>> scope_boxes;
  for (int id = 0; id < graph.size(); ++id) {
    if (!shown[static_cast<std::size_t>(id)]) continue;
    const Node& n = graph.node(id);
    std::string scope = box_scope(n, depth);
    std::size_t box = view.boxes.size();
    if (scope.empty()) {
      view.boxes.push_back(LayerBox{});
    } else if (auto it = scope_boxes.find(scope); it != scope_boxes.end()) {
      box = it->second;
    } else {
      scope_boxes.emplace(scope, box);
      LayerBox fresh;
      fresh.gradient = scope == "grad" || scope.starts_with("grad.");
      fresh.scope = std::move(scope);
      view.boxes.push_back(std::move(fresh));
    }
    LayerBox& b = view.boxes[box];
    b.nodes.push_back(id);
    b.gradient = b.gradient || graph.is_gradient(id);
    if (n.op_name() == "param") b.parameters += n.shape.numel();
    box_of[static_cast<std::size_t>(id)] = box;
  }
  for (int id = 0; id < graph.size(); ++id) {
    if (!shown[static_cast<std::size_t>(id)]) continue;
    const Node& n = graph.node(id);
    const std::size_t to = box_of[static_cast<std::size_t>(id)];
    if (is_output[static_cast<std::size_t>(id)] && !is_leaf(n)) add_distinct(view.boxes[to].output_shapes, n.shape);
    for (int in : n.inputs) {
      const std::size_t from = box_of[static_cast<std::size_t>(in)];
      if (from == to) continue;
      const Node& source = graph.node(in);
      if (!is_leaf(source) || view.boxes[from].scope.empty()) add_distinct(view.boxes[from].output_shapes, source.shape);
      auto edge = std::find_if(view.edges.begin(), view.edges.end(), [&](const LayerEdge& e) { return e.from == from && e.to == to; });
      if (edge == view.edges.end()) edge = view.edges.insert(view.edges.end(), LayerEdge{from, to, {}});
      add_distinct(edge->shapes, source.shape);
    }
  }
  return view;
}

std::string to_dot(const Graph& graph, const LayerView& view) {
  ClusterTree clusters;
  for (std::size_t i = 0; i < view.boxes.size(); ++i) {
    const LayerBox& b = view.boxes[i];
    if (b.nodes.empty()) throw ValueError(fmt::format("to_dot: box {} of the layer view has no nodes", i));
    if (b.scope.empty()) {  // a lone node: drawn as the node view draws it
      const int id = b.nodes.front();
      clusters.add({}, fmt::format("b{} [label=\"{}\", {}];", i, escape(label_of(graph.node(id))), node_style(graph, id)));
      continue;
    }
    std::string label = b.scope;
    if (b.parameters > 0) label += fmt::format("\\n{} parameters", grouped(b.parameters));
    if (!b.output_shapes.empty()) label += fmt::format("\\nout {}", shape_list(b.output_shapes));
    const std::size_t dot = b.scope.rfind('.');
    const std::string_view parent = dot == std::string::npos ? std::string_view{} : std::string_view(b.scope).substr(0, dot);
    clusters.add(parent, fmt::format("b{} [label=\"{}\", shape=box, style=\"rounded,filled\", fillcolor=\"{}\"];", i, escape(label),
                                     b.gradient ? "#f9cb9c" : b.parameters > 0 ? "#fff2cc" : "#ffffff"));
  }
  std::string out = header() + clusters.emit();
  // xlabel, not label: Graphviz 2.43 fails to rank some clustered graphs whose edges carry labels.
  for (const LayerEdge& e : view.edges) {
    out += fmt::format("  b{} -> b{} [xlabel=\"{}\", fontsize=8{}];\n", e.from, e.to, escape(shape_list(e.shapes)),
                       view.boxes[e.to].gradient ? ", color=\"#e69138\"" : "");
  }
  return out + "}\n";
}

}  // namespace xg
