#pragma once
// Reverse-mode differentiation as a graph-to-graph transformation: grad() appends the gradient
// nodes to the graph and returns them as Vars, which compile, run and differentiate like any other.
#include <optional>
#include <vector>

#include "xgrad/graph.hpp"

namespace xg {

/// d y / d x for every x in wrt. y must be a scalar unless `seed` (y's shape: the upstream gradient)
/// is given. Gradients of values used more than once are summed; broadcasting is summed back. An x
/// that y does not depend on gets zeros. Integer-valued nodes carry no gradient. Every gradient an
/// op's rule returns is checked against its input: a different shape or dtype is a GradientError
/// naming the op, the input and both (a rule's bug, never silently broadcast into place).
std::vector<Var> grad(Graph& graph, Var y, const std::vector<Var>& wrt, std::optional<Var> seed = {});

}  // namespace xg
