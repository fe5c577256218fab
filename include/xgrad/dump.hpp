#pragma once
// Seeing a graph: a text IR (one line per node), Graphviz DOT of every node grouped by scope, and a
// layer-level summary (one box per scope) with its own DOT. Gradient nodes are told apart.
// A compiled Program's own listing, with arena offsets, is Program::dump().
#include <cstdint>
#include <string>
#include <vector>

#include "xgrad/graph.hpp"

namespace xg {

/// One line per node: "%id = op(%in, ...) dtype shape 'name'", then "in scope" for a node built in
/// one, gradient nodes marked "[grad]".
std::string to_text(const Graph& graph);

/// A Graphviz digraph of the nodes `outputs` depend on (every node when `outputs` is empty): inputs
/// as ellipses, parameters and constants as boxes, forward ops in white and gradient ops in orange,
/// each labelled with its op, name and shape, inside nested clusters, one per scope (scope.hpp).
/// Render with `dot -Tsvg graph.dot -o graph.svg`.
std::string to_dot(const Graph& graph, const std::vector<Var>& outputs = {});

/// One box of a layer view: the nodes of one scope, cut at the view's depth, or one node that belongs
/// to no scope (and every input, which is fed rather than computed).
struct LayerBox {
  std::string scope;       // "encoder.0" at depth 2 for every node of "encoder.0..."; "" for a lone node
  std::vector<int> nodes;  // node ids, ascending
  std::int64_t parameters = 0;      // scalars of the parameters among them
  std::vector<Shape> output_shapes;  // distinct shapes of values computed here and used outside (or outputs)
  bool gradient = false;  // built by grad(): its scope begins with "grad"
};

/// Values flowing from one box to another; `shapes`: their distinct shapes.
struct LayerEdge {
  std::size_t from = 0, to = 0;  // indices into LayerView::boxes
  std::vector<Shape> shapes;
};

struct LayerView {
  std::vector<LayerBox> boxes;  // in the order of their first node
  std::vector<LayerEdge> edges;
};

/// The nodes `outputs` depend on (every node when empty), one box per scope cut at `depth` levels
/// ("grad." and what follows it count as the forward scope they mirror, so "grad.encoder.0" is a box
/// at depth 2). Throws ValueError when `depth` < 1.
LayerView layer_view(const Graph& graph, const std::vector<Var>& outputs = {}, int depth = 2);

/// The layer view as a Graphviz digraph: a box per scope with its name, parameter count and output
/// shapes, inside clusters of the scopes above it; edges labelled with the shapes that flow.
std::string to_dot(const Graph& graph, const LayerView& view);

}  // namespace xg
