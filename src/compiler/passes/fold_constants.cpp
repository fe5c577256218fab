// Constant folding: a node whose operands are all constants is computed once, here, by its own
// kernel (so the value is the one a run would compute), and becomes a constant.
#include <fmt/format.h>

#include "compiler/memory_plan.hpp"
#include "compiler/passes/program_graph.hpp"
#include "xgrad/format.hpp"

namespace xg {

namespace {

/// Larger values stay computed: a constant lives outside the arena, for the Program's lifetime.
constexpr std::size_t kMaxFoldedBytes = std::size_t{16} << 20;

bool foldable(const ProgramGraph& graph, const Node& n) {
  if (n.op->forward == nullptr || n.inputs.empty() || stream_seed(n.attrs)) return false;
  if (static_cast<std::size_t>(n.shape.numel()) * size_of(n.dtype) > kMaxFoldedBytes) return false;
  return std::all_of(n.inputs.begin(), n.inputs.end(), [&](int in) { return graph.constant_value(in) != nullptr; });
}

Tensor evaluate(const ProgramGraph& graph, const Node& n) {
  std::vector<std::size_t> dims(n.shape.begin(), n.shape.end());
  Tensor value = visit_dtype(n.dtype, [&]<class T>() { return Tensor(xt::xarray<T>(xt::zeros<T>(dims))); });
  if (n.shape.numel() == 0) return value;
  std::vector<Buffer> operands;
  for (int in : n.inputs) {
    const Tensor* operand = graph.constant_value(in);
    // Kernels only read their operands.
    operands.push_back(Buffer{const_cast<void*>(operand->data()), &graph.node(in).shape, graph.node(in).dtype});
  }
  RunContext context;  // evaluation mode, the calling thread
  std::vector<std::byte> scratch;
  if (n.op->workspace != nullptr) {
    const std::size_t bytes = n.op->workspace(n, std::span<const Node>(graph.nodes_view()), 1);
    scratch.resize(bytes + kArenaAlignment);
    const auto base = reinterpret_cast<std::uintptr_t>(scratch.data());
    context.workspace = scratch.data() + (kArenaAlignment - base % kArenaAlignment) % kArenaAlignment;
    context.workspace_bytes = bytes;
  }
  n.op->forward(n, operands, Buffer{value.data(), &n.shape, n.dtype}, context);
  return value;
}

}  // namespace

void fold_constants(ProgramGraph& graph, PassLog& log) {
  const std::vector<bool> needed = graph.live();
  for (int id = 0; id < graph.size(); ++id) {
    const Node& n = graph.node(id);
    if (!needed[static_cast<std::size_t>(id)] || !foldable(graph, n)) continue;
    const std::string before = describe(n, id);
    graph.make_constant(id, evaluate(graph, n));
    log.record(fmt::format("{} computed at compile time", before));
  }
}

}  // namespace xg
