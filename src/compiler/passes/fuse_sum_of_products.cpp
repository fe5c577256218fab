// Sums of products: sum(a * b) or sum(square(x)) over any axes, whose product no other op reads,
// becomes one sum_of_product that multiplies as it sums, and takes in a neg feeding either factor.
// The loss mask's sum(-log p * mask) is one kernel call instead of two, and the product is never
// stored. A row's sum of products (kernels::reduce_binary) adds in the order a row's sum
// (reduce_sum) adds stored values, both being sum_of_terms, and each product and negation is rounded
// as its own kernel rounds it, so the bits are the same. Only factors of the product's own shape: a
// broadcast factor (the encoder's pooling mask) is left to the two kernels.
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/passes/program_graph.hpp"
#include "xgrad/format.hpp"

namespace xg {

void fuse_sum_of_products(ProgramGraph& graph, PassLog& log) {
  const std::vector<bool> needed = graph.live();
  const std::vector<int> uses = graph.uses();
  const std::vector<std::vector<int>> readers = graph.readers();
  for (int id = 0; id < graph.size(); ++id) {
    const Node& sum = graph.node(id);
    if (!needed[static_cast<std::size_t>(id)] || sum.op != &op_sum || !is_float(sum.dtype)) continue;
    const int product = graph.resolve(sum.inputs[0]);
    const Node& mul = graph.node(product);
    const bool square = mul.op == &op_square;  // x * x, as its kernel computes it
    if ((mul.op != &op_mul && !square) || mul.shape.numel() == 0 || sole_reader(readers, uses, product) != id) continue;
    bool same_shape = true;
    for (int in : mul.inputs) same_shape = same_shape && graph.node(in).shape == mul.shape && graph.node(in).dtype == mul.dtype;
    if (!same_shape) continue;

    SumOfProductAttr attr{.sum = std::get<AxesAttr>(sum.attrs)};
    std::vector<int> factors = square ? std::vector<int>{mul.inputs[0], mul.inputs[0]} : mul.inputs;
    std::vector<std::string> parts;
    for (std::size_t k = 0; k < factors.size(); ++k) {
      const Node& factor = graph.node(factors[k]);
      if (square || factor.op != &op_neg || sole_reader(readers, uses, factors[k]) != product) continue;
      parts.push_back(describe(factor, factors[k]));
      (k == 0 ? attr.negate_a : attr.negate_b) = true;
      factors[k] = graph.resolve(factor.inputs[0]);
    }
    parts.push_back(describe(mul, product));
    parts.push_back(describe(sum, id));
    log.record(fmt::format("%{} sum_of_product: {}", id, fmt::join(parts, " + ")));
    Node& fused = graph.node(id);
    fused.op = &op_sum_of_product;
    fused.inputs = std::move(factors);
    fused.attrs = attr;
  }
}

}  // namespace xg
