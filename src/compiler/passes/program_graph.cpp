#include "compiler/passes/program_graph.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace xg {

ProgramGraph::ProgramGraph(std::vector<Node>& nodes, const std::vector<int>& outputs, const ValueStore& store,
                           std::unordered_map<int, Tensor>& folded)
    : nodes_(nodes), outputs_(outputs), value_of_(nodes.size()), store_(store), folded_(folded) {
  for (std::size_t id = 0; id < value_of_.size(); ++id) value_of_[id] = static_cast<int>(id);
}

int ProgramGraph::resolve(int id) const {
  while (value_of_[static_cast<std::size_t>(id)] != id) id = value_of_[static_cast<std::size_t>(id)];
  return id;
}

void ProgramGraph::forward(int from, int to) { value_of_[static_cast<std::size_t>(from)] = resolve(to); }

void ProgramGraph::apply_forwarding() {
  for (std::size_t id = 0; id < value_of_.size(); ++id) value_of_[id] = resolve(static_cast<int>(id));
  for (Node& n : nodes_) {
    for (int& in : n.inputs) in = value_of_[static_cast<std::size_t>(in)];
  }
}

std::vector<int> ProgramGraph::outputs() const {
  std::vector<int> out;
  for (int id : outputs_) out.push_back(resolve(id));
  return out;
}

bool ProgramGraph::is_output(int id) const {
  return std::any_of(outputs_.begin(), outputs_.end(), [&](int o) { return resolve(o) == id; });
}

std::vector<bool> ProgramGraph::live() const {
  std::vector<bool> needed(nodes_.size(), false);
  for (int id : outputs()) needed[static_cast<std::size_t>(id)] = true;
  for (std::size_t id = nodes_.size(); id-- > 0;) {
    if (!needed[id]) continue;
    for (int in : nodes_[id].inputs) needed[static_cast<std::size_t>(resolve(in))] = true;
  }
  return needed;
}

std::vector<int> ProgramGraph::uses() const {
  const std::vector<bool> needed = live();
  std::vector<int> count(nodes_.size(), 0);
  for (std::size_t id = 0; id < nodes_.size(); ++id) {
    if (!needed[id]) continue;
    for (int in : nodes_[id].inputs) ++count[static_cast<std::size_t>(resolve(in))];
  }
  for (int id : outputs()) ++count[static_cast<std::size_t>(id)];
  return count;
}

std::vector<std::vector<int>> ProgramGraph::readers() const {
  const std::vector<bool> needed = live();
  std::vector<std::vector<int>> out(nodes_.size());
  for (std::size_t id = 0; id < nodes_.size(); ++id) {
    if (!needed[id]) continue;
    for (int in : nodes_[id].inputs) {
      auto& list = out[static_cast<std::size_t>(resolve(in))];
      if (list.empty() || list.back() != static_cast<int>(id)) list.push_back(static_cast<int>(id));
    }
  }
  return out;
}

const Tensor* ProgramGraph::constant_value(int id) const {
  if (nodes_[static_cast<std::size_t>(id)].op != &op_constant) return nullptr;
  if (auto it = folded_.find(id); it != folded_.end()) return &it->second;
  return &store_.values.at(id);
}

void ProgramGraph::make_constant(int id, Tensor value) {
  Node& n = nodes_[static_cast<std::size_t>(id)];
  n.op = &op_constant;
  n.inputs.clear();
  n.attrs = {};
  folded_.insert_or_assign(id, std::move(value));
}

std::optional<int> sole_reader(const std::vector<std::vector<int>>& readers, const std::vector<int>& uses, int id) {
  // One use in all, and it is a reader's (not the graph's outputs').
  const auto& r = readers[static_cast<std::size_t>(id)];
  if (uses[static_cast<std::size_t>(id)] != 1 || r.size() != 1) return std::nullopt;
  return r.front();
}

bool constant_everywhere(const ProgramGraph& graph, int id, double value) {
  const Tensor* t = graph.constant_value(id);
  if (t == nullptr || t->numel() == 0) return false;
  return visit_dtype(t->dtype(), [&]<class T>() {
    const T* data = static_cast<const T*>(t->data());
    for (std::int64_t i = 0; i < t->numel(); ++i) {
      const auto x = static_cast<double>(data[i]);
      if (x != value || std::signbit(x) != std::signbit(value)) return false;
    }
    return true;
  });
}

ProgramCost program_cost(const ProgramGraph& graph) {
  ProgramCost cost;
  const std::vector<bool> needed = graph.live();
  auto bytes = [&](int id) {
    const Node& n = graph.node(id);
    return static_cast<std::size_t>(n.shape.numel()) * size_of(n.dtype);
  };
  for (int id = 0; id < graph.size(); ++id) {
    if (!needed[static_cast<std::size_t>(id)]) continue;
    ++cost.nodes;
    const Node& n = graph.node(id);
    if (n.op->forward == nullptr || n.shape.numel() == 0) continue;  // leaves, empty values
    if (n.op->view != nullptr && !n.inputs.empty() && n.op->view(n, graph.node(graph.resolve(n.inputs[0]))) >= 0) continue;
    ++cost.kernel_calls;
    if (n.op == &op_fused_matmul) {
      // What the epilogue reads besides the product's own operands.
      const auto& epilogue = std::get<EpilogueAttr>(n.attrs);
      const std::size_t first = epilogue.bias ? 3 : 2;
      for (std::size_t k = first; k < n.inputs.size(); ++k) cost.memory_bytes += bytes(graph.resolve(n.inputs[k]));
    } else if (n.op->matmul_flops == nullptr) {
      cost.memory_bytes += bytes(id);
      for (int in : n.inputs) cost.memory_bytes += bytes(graph.resolve(in));
    }
  }
  return cost;
}

void optimize(ProgramGraph& graph, const CompilePasses& which, CompileReport& report) {
  const ProgramCost before = program_cost(graph);
  using Pass = void (*)(ProgramGraph&, PassLog&);
  const std::pair<bool, std::pair<std::string_view, Pass>> passes[] = {
      {which.fold_constants, {"fold_constants", fold_constants}},
      {which.simplify, {"simplify", simplify}},
      {which.eliminate_common_subexpressions, {"eliminate_common_subexpressions", eliminate_common_subexpressions}},
      {which.sequence_major_attention, {"sequence_major_attention", sequence_major_attention}},
      {which.fuse_epilogues, {"fuse_epilogues", fuse_epilogues}},
      {which.fuse_sum_of_products, {"fuse_sum_of_products", fuse_sum_of_products}},
      {which.fuse_elementwise, {"fuse_elementwise", fuse_elementwise}},
  };
  for (const auto& [on, pass] : passes) {
    if (!on) continue;
    PassReport& r = report.passes.emplace_back(PassReport{std::string(pass.first), 0, {}});
    PassLog log(r);
    pass.second(graph, log);
    graph.apply_forwarding();
  }
  const ProgramCost after = program_cost(graph);
  report.nodes_before = before.nodes;
  report.nodes_after = after.nodes;
  report.kernel_calls_before = before.kernel_calls;
  report.kernel_calls_after = after.kernel_calls;
  report.memory_bytes_before = before.memory_bytes;
  report.memory_bytes_after = after.memory_bytes;
}

std::string CompileReport::summary(bool every_change) const {
  auto percent = [](std::size_t before, std::size_t after) {
    return before == 0 ? 0.0 : 100.0 * (static_cast<double>(after) - static_cast<double>(before)) / static_cast<double>(before);
  };
  std::string out = fmt::format(
      "nodes {} -> {}, kernel calls {} -> {} ({:+.1f}%), non-GEMM memory bytes {} -> {} ({:+.1f}%), compiled in {:.1f} ms\n",
      nodes_before, nodes_after, kernel_calls_before, kernel_calls_after, percent(kernel_calls_before, kernel_calls_after),
      memory_bytes_before, memory_bytes_after, percent(memory_bytes_before, memory_bytes_after), milliseconds);
  if (const MemoryOrderReport& m = memory_order; m.tried) {
    out += m.reordered ? fmt::format("memory-aware order: peak live bytes {} -> {} ({:+.1f}%)\n", m.peak_graph_order, m.peak_after,
                                     percent(m.peak_graph_order, m.peak_after))
                       : fmt::format("memory-aware order: graph order kept (peak live bytes {})\n", m.peak_graph_order);
  }
  if (const MemoryBudgetReport& m = memory_budget; m.budget > 0) {
    out += fmt::format(
        "memory budget {} bytes: arena {} -> {} bytes (peak live {} -> {}), {}{} values recomputed, {}{} more kernel calls, "
        "{} more matmul FLOPs, {} more non-GEMM memory bytes\n",
        m.budget, m.arena_before, m.arena_after, m.peak_before, m.peak_after, m.rescheduled ? "reordered for memory, " : "",
        m.recomputed, m.row_splits > 0 ? fmt::format("{} regions split by rows, ", m.row_splits) : std::string(),
        m.extra_kernel_calls, m.extra_matmul_flops, m.extra_memory_bytes);
  }
  constexpr std::size_t kShown = 3;
  for (const PassReport& p : passes) {
    out += fmt::format("  {}: {} rewrites\n", p.name, p.rewrites);
    const std::size_t shown = every_change ? p.changes.size() : std::min(p.changes.size(), kShown);
    for (std::size_t i = 0; i < shown; ++i) out += fmt::format("    {}\n", p.changes[i]);
    if (shown < p.changes.size()) out += fmt::format("    ... {} more\n", p.changes.size() - shown);
  }
  return out;
}

}  // namespace xg
