// Sequence-major attention: the models split heads with permute(reshape(projection), (0, 2, 1, 3))
// and merge them back with the inverse permute, one copy of q, k, v and the output each way, and
// as many again for the gradients. The attention kernels read and write the (batch, seq, heads, dim)
// layout directly (row strides of heads x dim), so when every permute around an attention and its
// backward pass is that one, they go: attention reads the permutes' operands, its output and its
// gradients take the permuted shapes, and the permutes after them become those values.
#include <fmt/format.h>

#include "compiler/passes/program_graph.hpp"
#include "xgrad/format.hpp"

namespace xg {

namespace {

bool swaps_heads_and_sequence(const Node& n) {
  return n.op == &op_permute && std::get<AxesAttr>(n.attrs).axes == std::vector<int>{0, 2, 1, 3};
}

/// Node `id`'s readers, when every one is the head/sequence permute.
std::optional<std::vector<int>> all_permuted(const ProgramGraph& graph, const std::vector<std::vector<int>>& readers, int id) {
  const auto& r = readers[static_cast<std::size_t>(id)];
  if (r.empty() || graph.is_output(id)) return std::nullopt;
  for (int reader : r) {
    if (!swaps_heads_and_sequence(graph.node(reader))) return std::nullopt;
  }
  return r;
}

/// What one attention's rewrite touches.
struct Plan {
  std::vector<int> outputs;                  // attention_output views, each with its permutes
  std::vector<std::vector<int>> output_permutes;
  std::vector<int> row_stats;                // attention_row_stats nodes, whose dO is the permute
  std::vector<int> backwards;                // the attention_backward nodes reading them (the same dO)
  std::vector<int> gradient_views;           // reshapes of dQ, dK, dV, each with its permutes
  std::vector<std::vector<int>> gradient_permutes;
};

/// The reshape views of dQ, dK and dV in a backward record (the layout of ops/attention.cpp's
/// RecordLayout: dQ, dK, dV, then dBias), or nothing when a part is read some other way.
bool collect_gradient_views(const ProgramGraph& graph, const std::vector<std::vector<int>>& readers, int backward,
                            std::int64_t qkv_numel, Plan& plan) {
  for (int slice : readers[static_cast<std::size_t>(backward)]) {
    const Node& s = graph.node(slice);
    if (s.op != &op_slice) return false;
    if (std::get<SliceAttr>(s.attrs).start >= qkv_numel) continue;  // dBias: its layout is its own
    for (int view : readers[static_cast<std::size_t>(slice)]) {
      if (graph.node(view).op != &op_reshape || graph.node(view).shape.rank() != 4) return false;
      auto permutes = all_permuted(graph, readers, view);
      if (!permutes) return false;
      plan.gradient_views.push_back(view);
      plan.gradient_permutes.push_back(std::move(*permutes));
    }
  }
  return true;
}

std::optional<Plan> plan_for(const ProgramGraph& graph, const std::vector<std::vector<int>>& readers, int attention) {
  const Node& a = graph.node(attention);
  if (std::get<AttentionAttr>(a.attrs).sequence_major) return std::nullopt;
  for (int k = 0; k < 3; ++k) {
    if (!swaps_heads_and_sequence(graph.node(a.inputs[static_cast<std::size_t>(k)]))) return std::nullopt;
  }
  std::int64_t qkv_numel = 0;
  for (int k = 0; k < 3; ++k) qkv_numel += graph.node(a.inputs[static_cast<std::size_t>(k)]).shape.numel();
  Plan plan;
  for (int reader : readers[static_cast<std::size_t>(attention)]) {
    const Node& r = graph.node(reader);
    if (r.op == &op_attention_output && r.inputs[0] == attention) {
      auto permutes = all_permuted(graph, readers, reader);
      if (!permutes) return std::nullopt;
      plan.outputs.push_back(reader);
      plan.output_permutes.push_back(std::move(*permutes));
    } else if (r.op == &op_attention_row_stats && r.inputs[0] == attention) {
      const int d_out = r.inputs[1];
      if (!swaps_heads_and_sequence(graph.node(d_out)) || graph.is_output(reader)) return std::nullopt;
      plan.row_stats.push_back(reader);
      for (int b : readers[static_cast<std::size_t>(reader)]) {
        const Node& backward = graph.node(b);
        if (backward.op != &op_attention_backward || !std::equal(a.inputs.begin(), a.inputs.end(), backward.inputs.begin()) ||
            backward.inputs[a.inputs.size()] != reader || backward.inputs.back() != d_out || graph.is_output(b)) {
          return std::nullopt;
        }
        plan.backwards.push_back(b);
        if (!collect_gradient_views(graph, readers, b, qkv_numel, plan)) return std::nullopt;
      }
    } else {
      return std::nullopt;  // the record read some other way
    }
  }
  return plan;
}

void to_sequence_major(Node& n) { std::get<AttentionAttr>(n.attrs).sequence_major = true; }

}  // namespace

void sequence_major_attention(ProgramGraph& graph, PassLog& log) {
  const std::vector<bool> needed = graph.live();
  const std::vector<std::vector<int>> readers = graph.readers();
  for (int id = 0; id < graph.size(); ++id) {
    if (!needed[static_cast<std::size_t>(id)] || graph.node(id).op != &op_attention) continue;
    const std::optional<Plan> plan = plan_for(graph, readers, id);
    if (!plan) continue;
    Node& attention = graph.node(id);
    std::vector<int> unpermuted;  // q, k, v as the projections made them
    for (int k = 0; k < 3; ++k) unpermuted.push_back(graph.node(attention.inputs[static_cast<std::size_t>(k)]).inputs[0]);
    const auto read_unpermuted = [&](Node& n, std::size_t first) {
      for (std::size_t k = 0; k < 3; ++k) n.inputs[first + k] = unpermuted[k];
      to_sequence_major(n);
    };
    const auto becomes = [&](int view, const std::vector<int>& permutes) {
      graph.node(view).shape = graph.node(permutes.front()).shape;
      for (int p : permutes) graph.forward(p, view);
    };
    read_unpermuted(attention, 0);
    for (std::size_t k = 0; k < plan->outputs.size(); ++k) {
      read_unpermuted(graph.node(plan->outputs[k]), 1);  // [record, q, k, v, ...]
      becomes(plan->outputs[k], plan->output_permutes[k]);
    }
    for (int r : plan->row_stats) {
      Node& stats = graph.node(r);
      to_sequence_major(stats);
      stats.inputs[1] = graph.node(stats.inputs[1]).inputs[0];
    }
    for (int b : plan->backwards) {
      Node& backward = graph.node(b);
      read_unpermuted(backward, 0);
      backward.inputs.back() = graph.node(backward.inputs.back()).inputs[0];
    }
    for (std::size_t k = 0; k < plan->gradient_views.size(); ++k) becomes(plan->gradient_views[k], plan->gradient_permutes[k]);
    log.record(fmt::format("{} and its {} backward pass(es) read and write (batch, seq, heads, dim)", describe(attention, id),
                           plan->backwards.size()));
  }
}

}  // namespace xg
