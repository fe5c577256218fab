// Reverse-mode autodiff as a graph transformation. The walk is generic; every derivative rule lives
// with its op (OpDef::vjp) and is built from ops, so gradients are nodes like any other.
#include "xgrad/autodiff.hpp"

#include <fmt/format.h>

#include "ops/builder_util.hpp"
#include "xgrad/format.hpp"
#include "xgrad/ops.hpp"

namespace xg {

namespace {

/// Nodes on some path from a node of wrt to y: only their gradients are built.
std::vector<bool> on_path(const Graph& graph, Var y, const std::vector<Var>& wrt) {
  std::vector<bool> from_wrt(static_cast<std::size_t>(y.id() + 1), false);
  for (Var w : wrt) {
    if (w.id() <= y.id()) from_wrt[static_cast<std::size_t>(w.id())] = true;
  }
  for (int id = 0; id <= y.id(); ++id) {
    const Node& n = graph.node(id);
    if (!is_float(n.dtype)) continue;
    for (int in : n.inputs) from_wrt[static_cast<std::size_t>(id)] = from_wrt[static_cast<std::size_t>(id)] || from_wrt[static_cast<std::size_t>(in)];
  }
  std::vector<bool> to_y(static_cast<std::size_t>(y.id() + 1), false);
  to_y[static_cast<std::size_t>(y.id())] = true;
  for (int id = y.id(); id >= 0; --id) {
    if (!to_y[static_cast<std::size_t>(id)]) continue;
    for (int in : graph.node(id).inputs) to_y[static_cast<std::size_t>(in)] = true;
  }
  for (std::size_t id = 0; id < to_y.size(); ++id) to_y[id] = to_y[id] && from_wrt[id] && is_float(graph.node(static_cast<int>(id)).dtype);
  return to_y;
}

/// Throws GradientError unless the rule of node `id` returned at most one gradient per input, each
/// either none or a value of this graph with exactly its input's shape and dtype. Accumulation adds
/// with broadcasting, so without this a rule that forgot to sum over broadcast axes (sum_to) would
/// give a wrong-shaped gradient without a word.
void check_rule(const Graph& graph, const Node& node, int id, const std::vector<Var>& inputs, const std::vector<Var>& grads) {
  const std::string rule = fmt::format("the gradient rule of {} at {}", node.op_name(), describe(node, id));
  if (grads.size() > inputs.size()) {
    throw GradientError(fmt::format("grad: {} returned {} gradients for its {} inputs", rule, grads.size(), inputs.size()));
  }
  for (std::size_t k = 0; k < grads.size(); ++k) {
    const Var g = grads[k], x = inputs[k];
    if (!g.valid()) continue;
    if (&g.graph() != &graph) {
      throw GradientError(fmt::format("grad: {} returned for input {} ({}) a value of another graph", rule, k, x.describe()));
    }
    if (g.shape() != x.shape() || g.dtype() != x.dtype()) {
      throw GradientError(fmt::format("grad: {} returned for input {} ({}) a gradient of {} {} ({}), but the input is {} {}", rule,
                                      k, x.describe(), g.dtype(), g.shape(), g.describe(), x.dtype(), x.shape()));
    }
  }
}

/// Where the gradient nodes that node `n`'s rule builds are recorded: beside the forward pass, in a
/// tree of its own that mirrors it, so pictures draw the backward pass apart.
std::string gradient_scope(const Node& n) { return n.scope.empty() ? "grad" : "grad." + n.scope; }

}  // namespace

std::vector<Var> grad(Graph& graph, Var y, const std::vector<Var>& wrt, std::optional<Var> seed) {
  detail::same_graph("grad", {y});
  if (!is_float(y.dtype())) throw GradientError(fmt::format("grad: {} is {}, not a float value", y.describe(), y.dtype()));
  for (Var w : wrt) {
    detail::same_graph("grad", {y, w});
    if (!is_float(w.dtype())) {
      throw GradientError(fmt::format("grad: {} has dtype {}; integer values have no gradient", w.describe(), w.dtype()));
    }
  }
  const int first_gradient_node = graph.size();
  Var upstream;
  if (seed) {
    detail::same_graph("grad", {y, *seed});
    if (seed->shape() != y.shape() || seed->dtype() != y.dtype()) {
      throw GradientError(fmt::format("grad: the seed {} ({} {}) must match {} ({} {})", seed->describe(), seed->dtype(),
                                      seed->shape(), y.describe(), y.dtype(), y.shape()));
    }
    upstream = *seed;
  } else if (y.shape().numel() != 1) {
    throw GradientError(fmt::format("grad: {} has shape {}; a non-scalar output needs a seed gradient", y.describe(),
                                    y.shape()));
  } else {
    const Scope scope = Scope::at(graph, gradient_scope(y.node()));
    upstream = broadcast_to(graph.scalar(1.0, y.dtype()), y.shape());
  }

  const std::vector<bool> needed = on_path(graph, y, wrt);
  std::vector<Var> grads(static_cast<std::size_t>(y.id() + 1));
  grads[static_cast<std::size_t>(y.id())] = upstream;
  for (int id = y.id(); id >= 0; --id) {
    const Var g = grads[static_cast<std::size_t>(id)];
    if (!g.valid() || !needed[static_cast<std::size_t>(id)]) continue;
    const Node node = graph.node(id);  // a copy: the rule appends to the graph
    if (node.inputs.empty() || !node.op->differentiable) continue;
    if (node.op->vjp == nullptr) {
      throw GradientError(fmt::format("grad: {} has no gradient rule, so it cannot be differentiated (it is itself a "
                                      "fused derivative; xgrad differentiates such ops only once)",
                                      graph.var(id).describe()));
    }
    const Scope scope = Scope::at(graph, gradient_scope(node));  // also over the accumulating additions
    std::vector<Var> inputs;
    for (int in : node.inputs) inputs.push_back(graph.var(in));
    const std::vector<Var> input_grads = node.op->vjp(VjpArgs{graph, node, inputs, graph.var(id), g});
    check_rule(graph, node, id, inputs, input_grads);
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      const auto in = static_cast<std::size_t>(node.inputs[k]);
      if (!needed[in] || k >= input_grads.size() || !input_grads[k].valid()) continue;
      grads[in] = grads[in].valid() ? grads[in] + input_grads[k] : input_grads[k];
    }
  }

  std::vector<Var> result;
  for (Var w : wrt) {
    const Var g = w.id() <= y.id() ? grads[static_cast<std::size_t>(w.id())] : Var{};
    if (g.valid()) {
      result.push_back(g);
      continue;
    }
    const Scope scope = Scope::at(graph, gradient_scope(w.node()));
    result.push_back(detail::zeros_like(w));
  }
  graph.mark_gradient(first_gradient_node, graph.size());
  return result;
}

}  // namespace xg
