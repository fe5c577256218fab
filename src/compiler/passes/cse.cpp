// Common-subexpression elimination: a node that repeats an earlier one (the same op, operands,
// attributes, dtype and shape; or a small constant of the same value) is the earlier one. Kernels
// are pure functions of their operands, attributes and the run, so the values are the same bits.
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "compiler/passes/program_graph.hpp"
#include "xgrad/format.hpp"

namespace xg {

namespace {

/// Constants up to this many elements are compared by value (scalars that builders make anew).
constexpr std::int64_t kMaxComparedConstant = 64;

std::size_t hash_of(const Node& n) {
  std::size_t h = std::hash<const void*>{}(n.op);
  for (int in : n.inputs) h = h * 1000003u ^ std::hash<int>{}(in);
  for (std::int64_t d : n.shape) h = h * 1000003u ^ std::hash<std::int64_t>{}(d);
  return h;
}

bool same_constant(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * size_of(a.dtype())) == 0;
}

}  // namespace

void eliminate_common_subexpressions(ProgramGraph& graph, PassLog& log) {
  const std::vector<bool> needed = graph.live();
  std::unordered_multimap<std::size_t, int> seen;
  for (int id = 0; id < graph.size(); ++id) {
    if (!needed[static_cast<std::size_t>(id)]) continue;
    Node& n = graph.node(id);
    if (n.op == &op_input || n.op == &op_param) continue;
    const Tensor* constant = graph.constant_value(id);
    if (constant != nullptr && constant->numel() > kMaxComparedConstant) continue;
    for (int& in : n.inputs) in = graph.resolve(in);
    const std::size_t h = hash_of(n);
    auto [first, last] = seen.equal_range(h);
    bool merged = false;
    for (auto it = first; it != last; ++it) {
      const Node& earlier = graph.node(it->second);
      const bool same = earlier.op == n.op && earlier.inputs == n.inputs && earlier.dtype == n.dtype &&
                        earlier.shape == n.shape && earlier.attrs == n.attrs &&
                        (constant == nullptr || same_constant(*constant, *graph.constant_value(it->second)));
      if (!same) continue;
      log.record(fmt::format("{} repeats {}", describe(n, id), describe(earlier, it->second)));
      graph.forward(id, it->second);
      merged = true;
      break;
    }
    if (!merged) seen.emplace(h, id);
  }
}

}  // namespace xg
