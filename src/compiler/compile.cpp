// compile(): dead-node elimination, schedule, liveness, in-place and aliasing decisions, and the
// static memory plan. Everything structural happens here so that run() only calls kernels.
#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "compiler/memory_order.hpp"
#include "compiler/memory_plan.hpp"
#include "compiler/passes/program_graph.hpp"
#include "compiler/remat.hpp"
#include "xgrad/kernel_environment.hpp"
#include "runtime/program_impl.hpp"
#include "util/checked.hpp"
#include "xgrad/format.hpp"

namespace xg {

const Tensor& Program::Impl::stored_value(int node) const {
  if (const auto it = folded.find(node); it != folded.end()) return it->second;
  return store->values.at(node);
}

Buffer Program::Impl::arena_buffer(int node) {
  const Node& n = nodes[static_cast<std::size_t>(node)];
  return Buffer{arena + placement[static_cast<std::size_t>(node)].offset, &n.shape, n.dtype};
}

Program compile(const Graph& graph, const std::vector<Var>& outputs, const CompileOptions& options) {
  if (outputs.empty()) throw ValueError("compile: no outputs given");
  if (options.threads < 0) throw ValueError(fmt::format("compile: {} threads; 0 means one per hardware thread", options.threads));
  int last = 0;
  for (Var v : outputs) {
    if (!v.valid() || &v.graph() != &graph || v.id() < 0 || v.id() >= graph.size()) {
      throw ValueError(fmt::format("compile: output {} does not belong to this graph", v.describe()));
    }
    last = std::max(last, v.id());
  }
  const auto started = std::chrono::steady_clock::now();
  auto impl = std::make_unique<Program::Impl>();
  impl->store = graph.store();
  for (int id = 0; id <= last; ++id) impl->nodes.push_back(graph.node(id));
  std::vector<int> wanted;
  for (Var v : outputs) wanted.push_back(v.id());
  ProgramGraph optimized(impl->nodes, wanted, *impl->store, impl->folded);
  optimize(optimized, options.passes, impl->report);
  impl->value_of = optimized.value_of();
  impl->pool = options.pool;
  if (impl->pool == nullptr) {
    impl->pool = ThreadPool::with_threads(options.threads);
  } else if (options.threads != 0 && options.threads != impl->pool->size()) {
    throw ValueError(fmt::format("compile: {} threads asked for with a pool of {}; give one or the other", options.threads,
                                 impl->pool->size()));
  }
  impl->flush_denormals = options.flush_denormals;
  claim_blas_threads();
  const auto& nodes = impl->nodes;
  const std::size_t count = nodes.size();

  // Dead-node elimination: only what the outputs reach.
  std::vector<bool> live(count, false);
  impl->is_output.assign(count, false);
  for (int id : optimized.outputs()) live[static_cast<std::size_t>(id)] = impl->is_output[static_cast<std::size_t>(id)] = true;
  for (std::size_t id = count; id-- > 0;) {
    if (!live[id]) continue;
    for (int in : nodes[id].inputs) live[static_cast<std::size_t>(in)] = true;
  }

  // Schedule (node ids are already topological), reordered where that lowers the peak of live
  // bytes, then, under a memory budget, an order and recomputations that fit it; liveness and
  // buffers of the result.
  std::vector<int> schedule;
  for (std::size_t id = 0; id < count; ++id) {
    if (live[id] && !is_stored(nodes[id]) && nodes[id].op != &op_input) schedule.push_back(static_cast<int>(id));
  }
  if (options.memory_aware_order) {
    const auto peak_of = [&](const std::vector<int>& order) {
      return peak_live_bytes(assign_buffers(nodes, live, impl->is_output, order, options.in_place, impl->pool->size()).buffers);
    };
    const Reordering order = reorder_for_memory(nodes, impl->is_output, schedule, peak_of, impl->report);
    impl->report.memory_order = {true, order.reordered, order.peak_before, order.peak_after};
  }
  bool copy_output_views = false;
  if (options.memory_budget) {
    std::vector<bool> gradient(count, false);
    for (std::size_t id = 0; id < count; ++id) gradient[id] = graph.is_gradient(static_cast<int>(id));
    fit_memory_budget({impl->nodes, live, impl->is_output, impl->value_of, impl->recomputes, gradient, schedule,
                       *options.memory_budget, options.in_place, options.memory_split_rows, impl->pool->size(), impl->report,
                       copy_output_views});
  }
  const std::size_t count_now = nodes.size();  // with the recomputations
  const Liveness lv =
      assign_buffers(nodes, live, impl->is_output, schedule, options.in_place, impl->pool->size(), copy_output_views);
  const MemoryPlan plan = plan_memory(lv.buffers);
  impl->arena_storage.resize(plan.arena_bytes + kArenaAlignment);
  const auto base = reinterpret_cast<std::uintptr_t>(impl->arena_storage.data());
  impl->arena = impl->arena_storage.data() + ((kArenaAlignment - base % kArenaAlignment) % kArenaAlignment);
  impl->memory.arena_bytes = plan.arena_bytes;
  impl->memory.peak_live_bytes = plan.peak_live_bytes;
  impl->memory.buffers = lv.buffers.size();

  impl->placement.assign(count_now, {});
  for (std::size_t id = 0; id < count_now; ++id) {
    if (is_stored(nodes[id])) {
      impl->placement[id] = {Placement::Kind::stored, 0};
    } else if (lv.buffer_of[id] >= 0) {
      impl->placement[id] = {Placement::Kind::arena, plan.offsets[static_cast<std::size_t>(lv.buffer_of[id])] + lv.offset_in_buffer[id]};
      impl->memory.tensor_bytes += bytes_of(nodes[id]);
      ++impl->memory.values;
    }
  }
  // An output a pass merged into another node is read where that node's value is.
  for (Var v : outputs) {
    const auto id = static_cast<std::size_t>(v.id());
    impl->placement[id] = impl->placement[static_cast<std::size_t>(impl->value_of[id])];
    impl->is_output[id] = true;
  }

  // The flat step list; stored leaves are bound before each run.
  std::vector<int> leaf_index(count_now, -1);
  for (int node_id : schedule) {
    const auto id = static_cast<std::size_t>(node_id);
    // Aliases have nothing to run; neither has an empty value, whose operands may not even have data.
    if (lv.skip[id] || nodes[id].shape.numel() == 0) continue;
    Step step{node_id, nodes[id].op->forward, impl->operands.size(), nodes[id].inputs.size(), impl->arena_buffer(node_id)};
    if (lv.workspace_of[id] >= 0) {
      const auto b = static_cast<std::size_t>(lv.workspace_of[id]);
      step.workspace = impl->arena + plan.offsets[b];
      step.workspace_bytes = lv.buffers[b].bytes;
    }
    for (int in : nodes[id].inputs) {
      const auto in_id = static_cast<std::size_t>(in);
      if (is_stored(nodes[in_id])) {
        if (leaf_index[in_id] < 0) {
          leaf_index[in_id] = static_cast<int>(impl->leaves.size());
          const auto folded = impl->folded.find(in);
          impl->leaves.push_back({in, {}, folded == impl->folded.end() ? nullptr : &folded->second});
        }
        impl->leaves[static_cast<std::size_t>(leaf_index[in_id])].operands.push_back(impl->operands.size());
        impl->operands.push_back(Buffer{nullptr, &nodes[in_id].shape, nodes[in_id].dtype});
      } else {
        impl->operands.push_back(impl->arena_buffer(in));
      }
    }
    impl->steps.push_back(step);
  }
  for (int id = 0; id < static_cast<int>(count); ++id) {
    if (nodes[static_cast<std::size_t>(id)].op != &op_input) continue;
    const bool needed = lv.step_of[static_cast<std::size_t>(id)] == 0;
    impl->inputs.push_back({id, needed ? impl->arena_buffer(id) : Buffer{}, needed});
  }
  impl->context.pool = impl->pool.get();
  impl->report.milliseconds = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return Program(std::move(impl));
}

}  // namespace xg
