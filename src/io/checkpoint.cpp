#include "xgrad/checkpoint.hpp"

#include <charconv>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "xgrad/format.hpp"
#include "xgrad/safetensors.hpp"

namespace xg {

namespace {

constexpr std::string_view kOptimizerPrefix = "optimizer.";

std::string state_name(const optim::Optimizer::StateTensor& s, const std::vector<Var>& params) {
  return fmt::format("{}{}.{}", kOptimizerPrefix, s.slot, params[s.param].node().name);
}

std::uint64_t parse_counter(const std::map<std::string, std::string>& metadata, const std::string& key, const std::string& path) {
  auto it = metadata.find(key);
  if (it == metadata.end()) throw CheckpointError(fmt::format("{}: metadata '{}' is missing", path, key));
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
  if (error != std::errc() || end != it->second.data() + it->second.size()) {
    throw CheckpointError(fmt::format("{}: metadata '{}' = '{}' is not a count", path, key, it->second));
  }
  return value;
}

std::string describe(const Tensor& t) { return fmt::format("{} {}", t.dtype(), t.shape()); }

}  // namespace

void save_checkpoint(const std::string& path, const Graph& graph, const TrainingState& state) {
  std::vector<std::pair<std::string, TensorRef>> tensors;
  // A const graph's parameters, found by node: Graph::params() is not const.
  for (int id = 0; id < graph.size(); ++id) {
    const Node& n = graph.node(id);
    if (n.op_name() == "param") tensors.emplace_back(n.name, TensorRef(graph.value(const_cast<Graph&>(graph).var(id))));
  }
  std::map<std::string, std::string> metadata = state.metadata;
  metadata["format"] = "xgrad checkpoint 1";
  metadata["run_index"] = std::to_string(state.run_index);
  if (state.optimizer != nullptr) {
    auto& optimizer = const_cast<optim::Optimizer&>(*state.optimizer);  // state() hands out the tensors it owns
    metadata["optimizer.kind"] = std::string(optimizer.kind());
    metadata["optimizer.steps"] = std::to_string(optimizer.steps());
    for (const auto& s : optimizer.state()) tensors.emplace_back(state_name(s, optimizer.params()), TensorRef(*s.value));
  }
  save_safetensors(path, tensors, metadata);
}

LoadedState load_checkpoint(const std::string& path, Graph& graph, optim::Optimizer* optimizer, const LoadOptions& options) {
  SafetensorsContent file = load_safetensors(path);
  std::vector<std::string> problems;
  std::set<std::string> used;
  std::vector<std::pair<Tensor*, Tensor*>> assignments;  // target <- source, applied only if all is well

  auto take = [&](const std::string& name, Tensor& target, const std::string& what) {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) {
      problems.push_back(fmt::format("missing {} '{}' ({})", what, name, describe(target)));
      return;
    }
    used.insert(name);
    if (it->second.dtype() != target.dtype() || it->second.shape() != target.shape()) {
      problems.push_back(fmt::format("{} '{}' is {} in the file but {} in the graph", what, name, describe(it->second),
                                     describe(target)));
      return;
    }
    assignments.emplace_back(&target, &it->second);
  };
  for (Var p : graph.params()) take(p.node().name, graph.value(p), "parameter");

  std::uint64_t optimizer_steps = 0;
  if (optimizer != nullptr) {
    auto kind = file.metadata.find("optimizer.kind");
    if (kind == file.metadata.end()) {
      problems.push_back("the file holds no optimizer state");
    } else if (kind->second != optimizer->kind()) {
      problems.push_back(fmt::format("the optimizer state is {}'s, not {}'s", kind->second, optimizer->kind()));
    } else {
      optimizer_steps = parse_counter(file.metadata, "optimizer.steps", path);
      for (const auto& s : optimizer->state()) take(state_name(s, optimizer->params()), *s.value, "optimizer state");
    }
  }
  for (const auto& [name, value] : file.tensors) {
    const bool optimizer_state = name.starts_with(kOptimizerPrefix);
    if (!used.contains(name) && options.strict && !(optimizer_state && optimizer == nullptr)) {
      problems.push_back(fmt::format("unexpected tensor '{}' ({}) matches no parameter of the graph", name, describe(value)));
    }
  }
  if (!problems.empty()) {
    throw CheckpointError(fmt::format("{} does not fit the graph ({} problem{}; nothing was loaded):\n  {}", path, problems.size(),
                                      problems.size() == 1 ? "" : "s", fmt::join(problems, "\n  ")));
  }
  LoadedState loaded;
  loaded.run_index = file.metadata.contains("run_index") ? parse_counter(file.metadata, "run_index", path) : 0;
  // Copied into the existing storage, so that views of a parameter taken before the load stay valid.
  for (auto& [target, source] : assignments) {
    std::memcpy(target->data(), source->data(), static_cast<std::size_t>(source->numel()) * size_of(source->dtype()));
  }
  if (optimizer != nullptr) optimizer->set_steps(static_cast<std::int64_t>(optimizer_steps));
  loaded.metadata = std::move(file.metadata);
  return loaded;
}

}  // namespace xg
