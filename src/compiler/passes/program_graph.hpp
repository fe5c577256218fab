#pragma once
// The part of a graph a Program computes, as the optimizing passes see and rewrite it. Node ids are
// the graph's, so that Vars keep naming their values: a pass rewrites a node in place (a fused op
// takes the id of the last node it replaces, whose operands all come before it, so ids stay a
// topological order) or forwards a node to another that holds the same value.
#include <optional>
#include <unordered_map>
#include <vector>

#include "xgrad/op_def.hpp"
#include "xgrad/compile_report.hpp"

namespace xg {

class ProgramGraph {
 public:
  ProgramGraph(std::vector<Node>& nodes, const std::vector<int>& outputs, const ValueStore& store,
               std::unordered_map<int, Tensor>& folded);

  std::vector<Node>& nodes() { return nodes_; }
  const std::vector<Node>& nodes_view() const { return nodes_; }
  const Node& node(int id) const { return nodes_[static_cast<std::size_t>(id)]; }
  Node& node(int id) { return nodes_[static_cast<std::size_t>(id)]; }
  int size() const { return static_cast<int>(nodes_.size()); }

  /// The node that holds `id`'s value.
  int resolve(int id) const;
  /// From now on `from`'s value is `to`'s: its users read `to`, and an output `from` is read from `to`.
  void forward(int from, int to);
  /// Points every operand at the node that holds its value (after forward()).
  void apply_forwarding();
  const std::vector<int>& value_of() const { return value_of_; }

  /// The outputs, resolved.
  std::vector<int> outputs() const;
  bool is_output(int id) const;
  /// Per node: whether the outputs need it.
  std::vector<bool> live() const;
  /// Per node: how many operands of needed nodes read it, plus one for each output it is.
  std::vector<int> uses() const;
  /// Per node: the needed nodes that read it, in id order (one entry per reading node).
  std::vector<std::vector<int>> readers() const;

  /// The value of a constant (a graph constant, or one a pass computed), or null.
  const Tensor* constant_value(int id) const;
  /// Turns node `id` into a constant holding `value`.
  void make_constant(int id, Tensor value);

 private:
  std::vector<Node>& nodes_;
  std::vector<int> outputs_;
  std::vector<int> value_of_;
  const ValueStore& store_;
  std::unordered_map<int, Tensor>& folded_;
};

/// The one node reading `id`, when exactly one needed node does, once, and `id` is not an output
/// (`readers` and `uses` as ProgramGraph gives them): a value a fused op may stop storing.
std::optional<int> sole_reader(const std::vector<std::vector<int>>& readers, const std::vector<int>& uses, int id);

/// Whether `id` is a constant whose every element equals `value`, sign of zero included.
bool constant_everywhere(const ProgramGraph& graph, int id, double value);

/// What a pass records of its work.
class PassLog {
 public:
  explicit PassLog(PassReport& report) : report_(report) {}
  void record(std::string change) {
    ++report_.rewrites;
    report_.changes.push_back(std::move(change));
  }

 private:
  PassReport& report_;
};

// The passes, in the order compile() runs them; each in its own file.
void fold_constants(ProgramGraph& graph, PassLog& log);
void simplify(ProgramGraph& graph, PassLog& log);
void eliminate_common_subexpressions(ProgramGraph& graph, PassLog& log);
void sequence_major_attention(ProgramGraph& graph, PassLog& log);
void fuse_epilogues(ProgramGraph& graph, PassLog& log);
void fuse_sum_of_products(ProgramGraph& graph, PassLog& log);
void fuse_elementwise(ProgramGraph& graph, PassLog& log);

/// Kernel calls and non-GEMM memory bytes of the needed nodes, as CompileReport counts them.
struct ProgramCost {
  std::size_t nodes = 0, kernel_calls = 0, memory_bytes = 0;
};
ProgramCost program_cost(const ProgramGraph& graph);

/// Runs the passes `which` selects, filling `report`.
void optimize(ProgramGraph& graph, const CompilePasses& which, CompileReport& report);

}  // namespace xg
