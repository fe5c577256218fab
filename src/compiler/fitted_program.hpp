#pragma once
// A program being fitted into a memory budget, as the budget's levers see it: nodes, the per-node
// vectors that grow with them, and the schedule, all owned by compile().
#include <vector>

#include "xgrad/graph.hpp"

namespace xg {

struct FittedProgram {
  std::vector<Node>& nodes;
  std::vector<bool>& live;
  std::vector<bool>& is_output;
  std::vector<int>& value_of;
  std::vector<int>& recomputes;       // per node: the node a recomputation repeats, else -1
  std::vector<int>& schedule;
  const std::vector<bool>& gradient;  // per node before fitting: built by grad(), the backward pass

  /// Appends `node` (its own value, not an output) and returns its id.
  int append(Node node, bool is_live, int repeats) {
    const int id = static_cast<int>(nodes.size());
    nodes.push_back(std::move(node));
    live.push_back(is_live);
    is_output.push_back(false);
    value_of.push_back(id);
    recomputes.push_back(repeats);
    return id;
  }
};

}  // namespace xg
