#include "xgrad/dump.hpp"

#include <fmt/format.h>

#include "xgrad/attr_fields.hpp"
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
    if (c == '"') out += "\\\"";
    else out += c;
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
    out += fmt::format("%{} = {}({}) {} {}{}{}{}\n", id, n.op_name(), fmt::join(inputs, ", "), n.dtype, n.shape,
                       attrs.empty() ? "" : fmt::format(" {{{}}}", attrs), n.name.empty() ? "" : fmt::format(" '{}'", n.name),
                       graph.is_gradient(id) ? " [grad]" : "");
  }
  return out;
}

std::string to_dot(const Graph& graph, const std::vector<Var>& outputs) {
  std::vector<bool> shown(static_cast<std::size_t>(graph.size()), outputs.empty());
  std::vector<bool> is_output(static_cast<std::size_t>(graph.size()), false);
  for (Var v : outputs) shown[static_cast<std::size_t>(v.id())] = is_output[static_cast<std::size_t>(v.id())] = true;
  for (int id = graph.size() - 1; id >= 0; --id) {
    if (!shown[static_cast<std::size_t>(id)]) continue;
    for (int in : graph.node(id).inputs) shown[static_cast<std::size_t>(in)] = true;
  }
  std::string out = "digraph xgrad {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10, style=filled];\n";
  for (int id = 0; id < graph.size(); ++id) {
    if (!shown[static_cast<std::size_t>(id)]) continue;
    const Node& n = graph.node(id);
    const std::string_view op = n.op_name();
    std::string style;
    if (op == "input") style = "shape=ellipse, fillcolor=\"#cfe2f3\"";
    else if (op == "param") style = "shape=box, fillcolor=\"#fff2cc\"";
    else if (op == "constant") style = "shape=box, fillcolor=\"#eeeeee\"";
    else if (graph.is_gradient(id)) style = "shape=box, fillcolor=\"#f9cb9c\"";
    else style = "shape=box, fillcolor=\"#ffffff\"";
    if (is_output[static_cast<std::size_t>(id)]) style += ", penwidth=2.5";
    out += fmt::format("  n{} [label=\"%{} {}\", {}];\n", id, id, escape(label_of(n)), style);
  }
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

}  // namespace xg
