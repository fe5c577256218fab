#pragma once
// Seeing a graph: a text IR (one line per node) and Graphviz DOT, with gradient nodes told apart.
// A compiled Program's own listing, with arena offsets, is Program::dump().
#include <string>
#include <vector>

#include "xgrad/graph.hpp"

namespace xg {

/// One line per node: "%id = op(%in, ...) dtype shape 'name'", gradient nodes marked "[grad]".
std::string to_text(const Graph& graph);

/// A Graphviz digraph of the nodes `outputs` depend on (every node when `outputs` is empty): inputs
/// as ellipses, parameters and constants as boxes, forward ops in white and gradient ops in orange,
/// each labelled with its op, name and shape. Render with `dot -Tsvg graph.dot -o graph.svg`.
std::string to_dot(const Graph& graph, const std::vector<Var>& outputs = {});

}  // namespace xg
