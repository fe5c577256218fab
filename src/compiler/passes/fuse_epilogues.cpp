// Epilogue fusion: a matrix product with a shared right operand (a linear layer, or its gradient
// with respect to the input) followed by `+ bias` along the last axis, an activation (ReLU, GELU),
// `+ residual`, `* dropout_mask` (dropout's gradient) and `* (gate > 0)` (ReLU's gradient, which
// reads ReLU's output) becomes one fused_matmul that applies them to each piece of the product
// while it is in cache. Every value in between must have no other reader: it is no longer stored.
#include <fmt/format.h>

#include "compiler/passes/program_graph.hpp"
#include "xgrad/format.hpp"

namespace xg {

namespace {

/// Follows reshapes (views of the same row-major data) from `id` to the next op that reads it.
std::optional<int> next_op(const ProgramGraph& graph, const std::vector<std::vector<int>>& readers, const std::vector<int>& uses,
                           int id) {
  std::optional<int> reader = sole_reader(readers, uses, id);
  while (reader && graph.node(*reader).op == &op_reshape) reader = sole_reader(readers, uses, *reader);
  return reader;
}

/// The operand of binary `op` node `node` that is not `chain`, or nothing.
std::optional<int> other_operand(const Node& node, int chain, const OpDef& op = op_add) {
  if (node.op != &op || node.inputs.size() != 2 || node.inputs[0] == node.inputs[1]) return std::nullopt;
  if (node.inputs[0] == chain) return node.inputs[1];
  if (node.inputs[1] == chain) return node.inputs[0];
  return std::nullopt;
}

/// The `gate` of a `greater(gate, 0)` node of the product's shape and type (0 of either sign), or nothing.
std::optional<int> positive_gate(const ProgramGraph& graph, int id, const Node& product) {
  const Node& compare = graph.node(id);
  if (compare.op != &op_greater || compare.inputs.size() != 2 || compare.dtype != product.dtype ||
      compare.shape.numel() != product.shape.numel()) {
    return std::nullopt;
  }
  const int gate = compare.inputs[0], zero = compare.inputs[1];
  const Node& g = graph.node(gate);
  if (g.dtype != product.dtype || g.shape.numel() != product.shape.numel()) return std::nullopt;
  if (!constant_everywhere(graph, zero, 0.0) && !constant_everywhere(graph, zero, -0.0)) return std::nullopt;
  return gate;
}

/// The node of the chain that `add` reads (the last one, or a reshape of it).
int chain_operand(const ProgramGraph& graph, const Node& add, int chain_end) {
  for (int in : add.inputs) {
    int at = in;
    while (at != chain_end && graph.node(at).op == &op_reshape) at = graph.node(at).inputs[0];
    if (at == chain_end) return in;
  }
  return -1;
}

bool is_bias(const Node& operand, const Node& sum, std::int64_t n) {
  if (operand.dtype != sum.dtype || operand.shape.rank() == 0 || operand.shape.numel() != n) return false;
  return operand.shape[operand.shape.rank() - 1] == n && sum.shape.rank() >= 1 && sum.shape[sum.shape.rank() - 1] == n;
}

}  // namespace

void fuse_epilogues(ProgramGraph& graph, PassLog& log) {
  const std::vector<bool> needed = graph.live();
  const std::vector<int> uses = graph.uses();
  const std::vector<std::vector<int>> readers = graph.readers();
  for (int product = 0; product < graph.size(); ++product) {
    const Node& mm = graph.node(product);
    if (!needed[static_cast<std::size_t>(product)] || mm.op != &op_matmul || !is_float(mm.dtype)) continue;
    const auto& attr = std::get<MatmulAttr>(mm.attrs);
    const Node& b = graph.node(mm.inputs[1]);
    if (attr.transpose_a || b.shape.rank() != 2 || mm.shape.numel() == 0) continue;
    const std::int64_t n = mm.shape[mm.shape.rank() - 1];

    EpilogueAttr epilogue{.product = attr};
    std::vector<int> inputs = mm.inputs;
    int end = product;  // the last node taken into the fused op
    std::vector<std::string> parts{describe(mm, product)};
    auto take = [&](int id, std::string_view role) {
      end = id;
      parts.push_back(fmt::format("{} ({})", describe(graph.node(id), id), role));
    };
    std::optional<int> next = next_op(graph, readers, uses, end);
    if (next) {
      const Node& add = graph.node(*next);
      if (auto bias = other_operand(add, chain_operand(graph, add, end)); bias && is_bias(graph.node(*bias), add, n)) {
        epilogue.bias = true;
        inputs.push_back(*bias);
        take(*next, "bias");
        next = next_op(graph, readers, uses, end);
      }
    }
    if (next) {
      const Node& act = graph.node(*next);
      if (act.op == &op_relu) epilogue.activation = EpilogueActivation::relu;
      if (act.op == &op_gelu) {
        epilogue.activation = std::get<GeluAttr>(act.attrs).approximate == GeluApprox::tanh ? EpilogueActivation::gelu_tanh : EpilogueActivation::gelu_erf;
      }
      if (epilogue.activation != EpilogueActivation::none) {
        take(*next, "activation");
        next = next_op(graph, readers, uses, end);
      }
    }
    if (next) {
      const Node& add = graph.node(*next);
      if (auto residual = other_operand(add, chain_operand(graph, add, end));
          residual && graph.node(*residual).shape.numel() == add.shape.numel() && add.shape.numel() == mm.shape.numel() &&
          graph.node(*residual).dtype == add.dtype) {
        epilogue.residual = true;
        inputs.push_back(*residual);
        take(*next, "residual");
        next = next_op(graph, readers, uses, end);
      }
    }
    // The other factor when the next op multiplies the chain by a value of the product's size.
    const auto multiplier = [&]() -> std::optional<int> {
      if (!next) return std::nullopt;
      const Node& mul = graph.node(*next);
      if (mul.shape.numel() != mm.shape.numel()) return std::nullopt;
      return other_operand(mul, chain_operand(graph, mul, end), op_mul);
    };
    // A dropout mask (the backward pass of dropout), then ReLU's gate.
    if (const auto mask = multiplier()) {
      const Node& m = graph.node(*mask);
      if (m.op == &op_dropout_mask && m.dtype == mm.dtype && m.shape.numel() == mm.shape.numel()) {
        const auto& dropout = std::get<DropoutAttr>(m.attrs);
        epilogue.dropout = dropout.p;
        epilogue.seed = dropout.seed;
        take(*next, "dropout");
        next = next_op(graph, readers, uses, end);
      }
    }
    if (const auto mask = multiplier()) {
      if (const auto gate = positive_gate(graph, *mask, mm)) {
        epilogue.gated = true;
        inputs.push_back(*gate);
        take(*next, "gate");
      }
    }
    if (end == product) continue;
    Node& fused = graph.node(end);
    log.record(fmt::format("%{} fused_matmul: {}", end, fmt::join(parts, " + ")));
    fused.op = &op_fused_matmul;
    fused.inputs = std::move(inputs);
    fused.attrs = epilogue;
  }
}

}  // namespace xg
