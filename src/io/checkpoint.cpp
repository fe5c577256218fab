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

std::string describe(DType dtype, const Shape& shape) { return fmt::format("{} {}", dtype, shape); }
Shape shape_of(const CheckpointTensor& t) { return Shape(t.shape.begin(), t.shape.end()); }

CheckpointTensor storage_of(std::string name, Tensor& t) {
  const Shape shape = t.shape();
  return {std::move(name), t.data(), t.dtype(), std::vector<std::size_t>(shape.begin(), shape.end())};
}

/// The graph's parameters and the optimizer's state as storage; const_casts because the same view
/// serves saving (reads) and loading (writes).
CheckpointContents contents_of(const Graph& graph, const optim::Optimizer* optimizer) {
  CheckpointContents contents;
  auto& g = const_cast<Graph&>(graph);
  for (Var p : g.params()) contents.params.push_back(storage_of(p.node().name, g.value(p)));
  if (optimizer != nullptr) {
    auto& o = const_cast<optim::Optimizer&>(*optimizer);  // state() hands out the tensors it owns
    contents.optimizer_kind = std::string(o.kind());
    contents.optimizer_steps = o.steps();
    for (const auto& s : o.state()) {
      contents.optimizer_state.push_back(storage_of(optimizer_state_name(s.slot, o.params()[s.param].node().name), *s.value));
    }
  }
  return contents;
}

}  // namespace

std::string optimizer_state_name(std::string_view slot, std::string_view param) {
  return fmt::format("{}{}.{}", kOptimizerPrefix, slot, param);
}

void save_checkpoint(const std::string& path, const CheckpointContents& contents) {
  std::vector<std::pair<std::string, TensorRef>> tensors;
  for (const auto* list : {&contents.params, &contents.optimizer_state}) {
    for (const CheckpointTensor& t : *list) tensors.emplace_back(t.name, TensorRef(t.data, t.dtype, t.shape));
  }
  std::map<std::string, std::string> metadata = contents.metadata;
  metadata["format"] = "xgrad checkpoint 1";
  metadata["run_index"] = std::to_string(contents.run_index);
  if (!contents.optimizer_kind.empty()) {
    metadata["optimizer.kind"] = contents.optimizer_kind;
    metadata["optimizer.steps"] = std::to_string(contents.optimizer_steps);
  }
  save_safetensors(path, tensors, metadata);
}

void save_checkpoint(const std::string& path, const Graph& graph, const TrainingState& state) {
  CheckpointContents contents = contents_of(graph, state.optimizer);
  contents.run_index = state.run_index;
  contents.metadata = state.metadata;
  save_checkpoint(path, contents);
}

LoadedState load_checkpoint(const std::string& path, const CheckpointContents& into, const LoadOptions& options) {
  SafetensorsContent file = load_safetensors(path);
  std::vector<std::string> problems;
  std::set<std::string> used;
  std::vector<std::pair<const CheckpointTensor*, const Tensor*>> assignments;  // applied only if all is well

  auto take = [&](const CheckpointTensor& target, const std::string& what) {
    auto it = file.tensors.find(target.name);
    if (it == file.tensors.end()) {
      problems.push_back(fmt::format("missing {} '{}' ({})", what, target.name, describe(target.dtype, shape_of(target))));
      return;
    }
    used.insert(target.name);
    if (it->second.dtype() != target.dtype || it->second.shape() != shape_of(target)) {
      problems.push_back(fmt::format("{} '{}' is {} in the file but {} in the graph", what, target.name,
                                     describe(it->second.dtype(), it->second.shape()), describe(target.dtype, shape_of(target))));
      return;
    }
    assignments.emplace_back(&target, &it->second);
  };
  for (const CheckpointTensor& p : into.params) take(p, "parameter");

  const bool with_optimizer = !into.optimizer_kind.empty();
  std::uint64_t optimizer_steps = 0;
  if (with_optimizer) {
    auto kind = file.metadata.find("optimizer.kind");
    if (kind == file.metadata.end()) {
      problems.push_back("the file holds no optimizer state");
    } else if (kind->second != into.optimizer_kind) {
      problems.push_back(fmt::format("the optimizer state is {}'s, not {}'s", kind->second, into.optimizer_kind));
    } else {
      optimizer_steps = parse_counter(file.metadata, "optimizer.steps", path);
      for (const CheckpointTensor& s : into.optimizer_state) take(s, "optimizer state");
    }
  }
  for (const auto& [name, value] : file.tensors) {
    const bool optimizer_state = name.starts_with(kOptimizerPrefix);
    if (!used.contains(name) && options.strict && !(optimizer_state && !with_optimizer)) {
      problems.push_back(fmt::format("unexpected tensor '{}' ({}) matches no parameter of the graph", name,
                                     describe(value.dtype(), value.shape())));
    }
  }
  if (!problems.empty()) {
    throw CheckpointError(fmt::format("{} does not fit the graph ({} problem{}; nothing was loaded):\n  {}", path, problems.size(),
                                      problems.size() == 1 ? "" : "s", fmt::join(problems, "\n  ")));
  }
  LoadedState loaded;
  loaded.run_index = file.metadata.contains("run_index") ? parse_counter(file.metadata, "run_index", path) : 0;
  loaded.optimizer_steps = static_cast<std::int64_t>(optimizer_steps);
  // Copied into the existing storage, so that views of a parameter taken before the load stay valid.
  for (const auto& [target, source] : assignments) {
    std::memcpy(target->data, source->data(), static_cast<std::size_t>(source->numel()) * size_of(source->dtype()));
  }
  loaded.metadata = std::move(file.metadata);
  return loaded;
}

LoadedState load_checkpoint(const std::string& path, Graph& graph, optim::Optimizer* optimizer, const LoadOptions& options) {
  LoadedState loaded = load_checkpoint(path, contents_of(graph, optimizer), options);
  if (optimizer != nullptr) optimizer->set_steps(loaded.optimizer_steps);
  return loaded;
}

}  // namespace xg
