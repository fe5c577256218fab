// Algebraic simplification, exact in IEEE arithmetic: identities that return an operand unchanged
// (x * 1, x / 1, x - (+0), x + (-0); x + (+0) is kept, since -0 + +0 is +0), reshape and permute
// chains, identity reshapes, permutes, broadcasts and casts, and broadcast_to feeding an op that
// broadcasts by itself (autodiff's broadcast-then-multiply).
#include <cmath>

#include <fmt/format.h>

#include "compiler/passes/program_graph.hpp"
#include "xgrad/format.hpp"

namespace xg {

namespace {

bool broadcasts_operands(const OpDef* op) {
  return op == &op_add || op == &op_sub || op == &op_mul || op == &op_div || op == &op_greater || op == &op_less ||
         op == &op_equal || op == &op_not_equal || op == &op_where;
}

/// NumPy broadcasting of several shapes, or nothing when they do not fit.
std::optional<Shape> broadcast_all(const std::vector<const Shape*>& shapes) {
  int rank = 0;
  for (const Shape* s : shapes) rank = std::max(rank, s->rank());
  std::vector<std::int64_t> dims(static_cast<std::size_t>(rank), 1);
  for (const Shape* s : shapes) {
    for (int axis = 0; axis < s->rank(); ++axis) {
      std::int64_t& d = dims[static_cast<std::size_t>(rank - s->rank() + axis)];
      const std::int64_t e = (*s)[axis];
      if (e == d || e == 1) continue;
      if (d != 1) return std::nullopt;
      d = e;
    }
  }
  return Shape(std::move(dims));
}

/// The operand that `n` returns unchanged, if `n` is an arithmetic identity.
std::optional<int> identity_operand(const ProgramGraph& graph, const Node& n) {
  if (n.inputs.size() != 2) return std::nullopt;
  const int a = n.inputs[0], b = n.inputs[1];
  const auto keeps = [&](int x) { return graph.node(x).shape == n.shape && graph.node(x).dtype == n.dtype; };
  if (n.op == &op_mul) {
    if (keeps(a) && constant_everywhere(graph, b, 1.0)) return a;
    if (keeps(b) && constant_everywhere(graph, a, 1.0)) return b;
  } else if (n.op == &op_div) {
    if (keeps(a) && constant_everywhere(graph, b, 1.0)) return a;
  } else if (n.op == &op_sub) {
    if (keeps(a) && constant_everywhere(graph, b, 0.0)) return a;
  } else if (n.op == &op_add) {
    if (keeps(a) && constant_everywhere(graph, b, -0.0)) return a;
    if (keeps(b) && constant_everywhere(graph, a, -0.0)) return b;
  }
  return std::nullopt;
}

bool is_identity_permutation(const std::vector<int>& axes) {
  for (std::size_t i = 0; i < axes.size(); ++i) {
    if (axes[i] != static_cast<int>(i)) return false;
  }
  return true;
}

}  // namespace

void simplify(ProgramGraph& graph, PassLog& log) {
  const std::vector<bool> needed = graph.live();
  for (int id = 0; id < graph.size(); ++id) {
    if (!needed[static_cast<std::size_t>(id)]) continue;
    Node& n = graph.node(id);
    for (int& in : n.inputs) in = graph.resolve(in);
    const Node* first = n.inputs.empty() ? nullptr : &graph.node(n.inputs[0]);
    const std::string what = describe(n, id);

    // Same value as an operand.
    std::optional<int> same;
    if ((n.op == &op_reshape || n.op == &op_broadcast_to) && first->shape == n.shape) same = n.inputs[0];
    if (n.op == &op_cast && first->dtype == n.dtype) same = n.inputs[0];
    if (n.op == &op_stop_gradient) same = n.inputs[0];  // only autodiff reads the difference
    if (n.op == &op_permute && is_identity_permutation(std::get<AxesAttr>(n.attrs).axes)) same = n.inputs[0];
    if (!same) same = identity_operand(graph, n);
    if (same) {
      graph.forward(id, *same);
      log.record(fmt::format("{} is {}", what, describe(graph.node(*same), *same)));
      continue;
    }

    // Chains of one op collapse into one.
    if (n.op == &op_reshape && first->op == &op_reshape) {
      n.inputs[0] = graph.resolve(first->inputs[0]);
      log.record(fmt::format("{} reshapes the reshape's operand directly", what));
    } else if (n.op == &op_permute && first->op == &op_permute) {
      const auto& outer = std::get<AxesAttr>(n.attrs).axes;
      const auto& inner = std::get<AxesAttr>(first->attrs).axes;
      std::vector<int> composed(outer.size());
      for (std::size_t j = 0; j < outer.size(); ++j) composed[j] = inner[static_cast<std::size_t>(outer[j])];
      n.inputs[0] = graph.resolve(first->inputs[0]);
      const bool identity = is_identity_permutation(composed);
      std::get<AxesAttr>(n.attrs).axes = std::move(composed);
      if (identity) graph.forward(id, n.inputs[0]);
      log.record(fmt::format("{} composed with the permute before it{}", what, identity ? " (the identity)" : ""));
    }

    // An explicit broadcast before an op that broadcasts its operands itself.
    if (broadcasts_operands(n.op)) {
      for (std::size_t k = 0; k < n.inputs.size(); ++k) {
        const Node& operand = graph.node(n.inputs[k]);
        if (operand.op != &op_broadcast_to) continue;
        std::vector<const Shape*> shapes;
        for (std::size_t j = 0; j < n.inputs.size(); ++j) {
          shapes.push_back(j == k ? &graph.node(operand.inputs[0]).shape : &graph.node(n.inputs[j]).shape);
        }
        if (broadcast_all(shapes) != n.shape) continue;
        log.record(fmt::format("{} broadcasts {} itself", what, describe(operand, n.inputs[k])));
        n.inputs[k] = graph.resolve(operand.inputs[0]);
      }
    }
  }
}

}  // namespace xg
