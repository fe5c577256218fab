#pragma once
// Checkpoints: a graph's parameters by name (PyTorch's state_dict keys), optionally with the
// optimizer's state and the training progress, in one safetensors file written atomically.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/optim.hpp"

namespace xg {

/// What a checkpoint holds besides the parameters.
struct TrainingState {
  const optim::Optimizer* optimizer = nullptr;  // its moments/momenta and step count, if given
  std::uint64_t run_index = 0;                  // the Program's run counter (it drives dropout masks)
  std::map<std::string, std::string> metadata;  // anything else, e.g. a data-order RNG's state
};

/// Saves every parameter of `graph` under its name, in its dtype and shape. With a state, also the
/// optimizer's tensors (as "optimizer.<slot>.<parameter name>") and the counters (as metadata).
/// Written atomically (see save_safetensors).
void save_checkpoint(const std::string& path, const Graph& graph, const TrainingState& state = {});

struct LoadOptions {
  /// Names in the file that are neither parameters of the graph nor optimizer state are an error
  /// (as PyTorch's load_state_dict(strict=True)); off, they are ignored.
  bool strict = true;
};

/// What load_checkpoint read besides the parameters.
struct LoadedState {
  std::uint64_t run_index = 0;
  std::int64_t optimizer_steps = 0;
  std::map<std::string, std::string> metadata;
};

/// Loads the parameters of `graph` (and, if given, the optimizer's state) from `path`. Every
/// parameter must be in the file with its exact dtype and shape; otherwise CheckpointError lists
/// every missing, unexpected and mismatched name, and nothing is changed.
LoadedState load_checkpoint(const std::string& path, Graph& graph, optim::Optimizer* optimizer = nullptr,
                            const LoadOptions& options = {});

// ---- the same files from plain storage: what generated models (and the functions above) use ----

/// One tensor a checkpoint writes from or loads into, in place.
struct CheckpointTensor {
  std::string name;
  void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<std::size_t> shape;
};

/// Everything a checkpoint holds, as storage.
struct CheckpointContents {
  std::vector<CheckpointTensor> params;
  std::string optimizer_kind;  // "AdamW", "SGD", ...; empty: no optimizer state
  std::int64_t optimizer_steps = 0;
  std::vector<CheckpointTensor> optimizer_state;  // named by optimizer_state_name()
  std::uint64_t run_index = 0;
  std::map<std::string, std::string> metadata;
};

/// "optimizer.<slot>.<parameter>", e.g. "optimizer.exp_avg.layers.0.norm1.weight".
std::string optimizer_state_name(std::string_view slot, std::string_view param);

void save_checkpoint(const std::string& path, const CheckpointContents& contents);
/// Fills `into`'s params (and optimizer state, when optimizer_kind is set and matches the file's)
/// in place, all or nothing, with the errors load_checkpoint(path, graph, ...) gives.
LoadedState load_checkpoint(const std::string& path, const CheckpointContents& into, const LoadOptions& options = {});

}  // namespace xg
