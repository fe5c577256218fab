// Elementwise fusion: a tree of elementwise ops and dropout masks of one shape, whose inner values
// no other op reads, becomes one fused_elementwise node that computes it in one pass over the
// output (bias add + activation + dropout, GELU'(x) * grad, softmax minus one-hot, mask
// multiplies). Nothing is reassociated: each instruction is its op, with its op's functor and loop.
//
// What makes it exact is where each element's SIMD batch begins. An op's own kernel computes rows
// of its broadcast operands (row length L: the whole array for a unary op, the merged trailing
// axes for a binary op), each row in SIMD batches from the row's start and a scalar tail; its
// thread split cuts rows at multiples of every SIMD width, which changes no batch. The fused
// kernel walks rows of R = the smallest L of its instructions, and an element sits at the same
// place of a batch in both whenever every L is R, or R is a multiple of the SIMD width (then no
// instruction has a tail at all). Fusions that would move an element into another batch, or
// across the SIMD/scalar line, are not made.
#include <algorithm>
#include <iterator>
#include <map>
#include <queue>

#include <fmt/format.h>

#include "compiler/passes/program_graph.hpp"
#include "xgrad/kernels/fused_elementwise.hpp"
#include "xgrad/kernels/simd.hpp"

namespace xg {

namespace {

/// The instruction computing this node, when it is an elementwise op the fused kernel can run.
std::optional<ElementwiseOp> instruction_of(const Node& n) {
  static const std::map<const OpDef*, ElementwiseOp> ops{
      {&op_neg, ElementwiseOp::neg},         {&op_exp, ElementwiseOp::exp},       {&op_log, ElementwiseOp::log},
      {&op_sqrt, ElementwiseOp::sqrt},       {&op_rsqrt, ElementwiseOp::rsqrt},   {&op_square, ElementwiseOp::square},
      {&op_tanh, ElementwiseOp::tanh},       {&op_sigmoid, ElementwiseOp::sigmoid}, {&op_relu, ElementwiseOp::relu},
      {&op_erf, ElementwiseOp::erf},         {&op_add, ElementwiseOp::add},       {&op_sub, ElementwiseOp::sub},
      {&op_mul, ElementwiseOp::mul},         {&op_div, ElementwiseOp::div},       {&op_greater, ElementwiseOp::greater},
      {&op_less, ElementwiseOp::less},       {&op_equal, ElementwiseOp::equal},   {&op_not_equal, ElementwiseOp::not_equal},
      {&op_where, ElementwiseOp::where},     {&op_dropout_mask, ElementwiseOp::dropout_mask},
  };
  if (n.op == &op_gelu) {
    return std::get<GeluAttr>(n.attrs).approximate == GeluApprox::tanh ? ElementwiseOp::gelu_tanh : ElementwiseOp::gelu_erf;
  }
  const auto it = ops.find(n.op);
  if (it == ops.end()) return std::nullopt;
  return it->second;
}

bool is_simd_op(ElementwiseOp op) { return op != ElementwiseOp::where && op != ElementwiseOp::dropout_mask; }

/// The length of the rows the node's own kernel computes one after another (see the top).
std::int64_t kernel_row_length(const ProgramGraph& graph, const Node& n) {
  const auto dims = [&](int input) { return graph.node(n.inputs[static_cast<std::size_t>(input)]).shape.dims(); };
  if (n.inputs.size() == 2) return kernels::RowWalk<2>(n.shape.dims(), {dims(0), dims(1)}).row_length();
  if (n.inputs.size() == 3) return kernels::RowWalk<3>(n.shape.dims(), {dims(0), dims(1), dims(2)}).row_length();
  return n.shape.numel();  // map_unary over the whole array; a mask has no rows
}

class Fusion {
 public:
  Fusion(const ProgramGraph& graph, int root) : graph_(&graph), root_id_(root), shape_(graph.node(root).shape), dtype_(graph.node(root).dtype) {
    simd_width_ = visit_float(dtype_, []<class T>() { return kernels::simd_width<T>; });
  }

  int root() const { return root_id_; }

  /// Whether `id` may be computed inside the fused node: an elementwise op of the root's shape and
  /// dtype (its operands too: where's condition must be of the values' type).
  bool fusable(int id) const {
    const Node& n = graph().node(id);
    if (!instruction_of(n) || n.dtype != dtype_ || !(n.shape == shape_)) return false;
    return std::all_of(n.inputs.begin(), n.inputs.end(), [&](int in) { return graph().node(in).dtype == dtype_; });
  }

  /// Adds `id` when the fused loop still computes every element as the separate kernels do.
  bool try_add(int id) {
    if (static_cast<int>(members_.size()) >= kernels::kMaxFusedInstructions) return false;
    if (graph().node(id).op == &op_dropout_mask && has_mask_) return false;  // one stream seed per node
    members_.push_back(id);
    if (!exact()) {
      members_.pop_back();
      return false;
    }
    has_mask_ = has_mask_ || graph().node(id).op == &op_dropout_mask;
    return true;
  }

  /// Takes out a dropout mask: it becomes an operand of the output's shape, which changes no row.
  void remove(int mask) {
    if (const auto it = std::find(members_.begin(), members_.end(), mask); it != members_.end()) {
      members_.erase(it);
      has_mask_ = false;
    }
  }

  bool contains(int id) const { return std::find(members_.begin(), members_.end(), id) != members_.end(); }
  std::size_t size() const { return members_.size(); }

  /// The members in id order (a topological order), and the operands they read from outside.
  std::vector<int> members() const {
    std::vector<int> sorted = members_;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }
  std::vector<int> operands() const {
    std::vector<int> out;
    for (int m : members()) {
      for (int in : graph().node(m).inputs) {
        if (!contains(in) && std::find(out.begin(), out.end(), in) == out.end()) out.push_back(in);
      }
    }
    return out;
  }

  /// The program over the operands' slots and one slot per member.
  FusedElementwiseAttr program() const {
    const std::vector<int> order = members(), inputs = operands();
    FusedElementwiseAttr attr{.program = {}, .row_length = row_length()};
    const auto slot = [&](int id) {
      if (const auto it = std::find(inputs.begin(), inputs.end(), id); it != inputs.end()) return static_cast<int>(it - inputs.begin());
      return static_cast<int>(inputs.size() + static_cast<std::size_t>(std::find(order.begin(), order.end(), id) - order.begin()));
    };
    for (int id : order) {
      const Node& n = graph().node(id);
      ElementwiseInstruction instruction{.op = *instruction_of(n)};
      int* args[] = {&instruction.a, &instruction.b, &instruction.c};
      for (std::size_t k = 0; k < n.inputs.size(); ++k) *args[k] = slot(n.inputs[k]);
      if (const auto* mask = std::get_if<DropoutAttr>(&n.attrs)) {
        attr.dropout = mask->p;
        attr.seed = mask->seed;
      }
      attr.program.push_back(instruction);
    }
    return attr;
  }

 private:
  std::int64_t row_length() const {
    std::int64_t length = shape_.numel();
    for (int m : members_) {
      if (!graph().node(m).inputs.empty()) length = std::min(length, kernel_row_length(graph(), graph().node(m)));
    }
    return length;
  }

  bool exact() const {
    const std::int64_t rows = row_length();
    if (std::ssize(operands()) > kernels::kMaxFusedOperands) return false;
    for (int m : members_) {
      const Node& n = graph().node(m);
      if (n.inputs.empty()) continue;
      const std::int64_t own = kernel_row_length(graph(), n);
      if (own % rows != 0) return false;
      // Rows shorter than the op's own: its batches stay in place only if no row has a tail.
      if (is_simd_op(*instruction_of(n)) && own != rows && rows % simd_width_ != 0) return false;
    }
    for (int in : operands()) {
      if (!kernels::BroadcastRows::make(shape_.dims(), graph().node(in).shape.dims(), rows)) return false;
    }
    return true;
  }

  const ProgramGraph& graph() const { return *graph_; }

  const ProgramGraph* graph_;
  int root_id_;
  Shape shape_;
  DType dtype_;
  std::int64_t simd_width_ = 1;
  std::vector<int> members_;
  bool has_mask_ = false;
};

}  // namespace

void fuse_elementwise(ProgramGraph& graph, PassLog& log) {
  const std::vector<bool> needed = graph.live();
  const std::vector<std::vector<int>> readers = graph.readers();
  std::vector<bool> taken(static_cast<std::size_t>(graph.size()), false);
  std::vector<Fusion> fusions;
  // Roots from the last node back, so that a value's readers are decided before the value is.
  for (int root = graph.size() - 1; root >= 0; --root) {
    const Node& n = graph.node(root);
    if (!needed[static_cast<std::size_t>(root)] || taken[static_cast<std::size_t>(root)] || !instruction_of(n) ||
        !is_float(n.dtype) || n.shape.numel() == 0 || n.op == &op_dropout_mask) {
      continue;
    }
    Fusion fusion(graph, root);
    if (!fusion.fusable(root)) continue;
    fusion.try_add(root);
    std::priority_queue<int> candidates(n.inputs.begin(), n.inputs.end());
    int last_seen = -1;
    while (!candidates.empty()) {
      const int id = candidates.top();
      candidates.pop();
      if (id == last_seen) continue;  // reached through several members
      last_seen = id;
      const auto& r = readers[static_cast<std::size_t>(id)];
      // Only a value that no one outside reads, and that is no output, stops being stored. A
      // dropout mask is a function of its seed, the run and the position alone: every group that
      // reads it may compute it again (and it stops being stored if all of them do, below).
      const bool recomputable = graph.node(id).op == &op_dropout_mask;
      if (taken[static_cast<std::size_t>(id)] || graph.is_output(id) || r.empty() || !fusion.fusable(id) ||
          (!recomputable && !std::all_of(r.begin(), r.end(), [&](int reader) { return fusion.contains(reader); }))) {
        continue;
      }
      if (!fusion.try_add(id)) continue;
      for (int in : graph.node(id).inputs) candidates.push(in);
    }
    if (fusion.size() < 2) continue;
    for (int m : fusion.members()) {
      if (graph.node(m).op != &op_dropout_mask) taken[static_cast<std::size_t>(m)] = true;
    }
    fusions.push_back(std::move(fusion));
  }
  // A mask some reader still reads from memory is computed by its own kernel anyway: the groups
  // read it rather than draw it again.
  for (int mask = 0; mask < graph.size(); ++mask) {
    if (graph.node(mask).op != &op_dropout_mask) continue;
    const auto& r = readers[static_cast<std::size_t>(mask)];
    const bool everywhere = std::all_of(r.begin(), r.end(), [&](int reader) {
      return std::any_of(fusions.begin(), fusions.end(), [&](const Fusion& f) { return f.contains(reader) && f.contains(mask); });
    });
    if (everywhere) continue;
    for (Fusion& f : fusions) f.remove(mask);
  }
  for (const Fusion& fusion : fusions) {
    if (fusion.size() < 2) continue;
    std::vector<std::string> parts;
    for (int m : fusion.members()) parts.push_back(describe(graph.node(m), m));
    const int root = fusion.root();
    FusedElementwiseAttr program = fusion.program();
    std::vector<int> operands = fusion.operands();
    Node& fused = graph.node(root);
    fused.attrs = std::move(program);
    fused.inputs = std::move(operands);
    fused.op = &op_fused_elementwise;
    log.record(fmt::format("%{} fused_elementwise (rows of {}): {}", root, std::get<FusedElementwiseAttr>(fused.attrs).row_length,
                           fmt::join(parts, " + ")));
  }
}

}  // namespace xg
