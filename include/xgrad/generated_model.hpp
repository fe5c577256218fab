#pragma once
// What a generated model (xgrad-codegen's output, see codegen.hpp) is made of: tensors whose shape
// is part of their type, and the one fixed-size arena its kernels work in.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "xgrad/checkpoint.hpp"
#include "xgrad/error.hpp"
#include "xgrad/graph.hpp"
#include "xgrad/optim.hpp"
#include "xgrad/tensor.hpp"
#include "xgrad/thread_pool.hpp"

namespace xg {

/// A row-major array of T whose extents are constants: a parameter, an input, an optimizer moment.
/// Owns 64-byte-aligned storage on the heap (models are large); zero-filled when made; copies deep.
template <class T, std::size_t... Dims>
class FixedTensor {
 public:
  using value_type = T;
  static constexpr std::size_t rank = sizeof...(Dims);
  static constexpr std::array<std::size_t, rank> shape{Dims...};
  static constexpr std::size_t size = (std::size_t{1} * ... * Dims);

  FixedTensor() : storage_(std::make_unique<Storage>()) {}
  FixedTensor(const FixedTensor& other) : storage_(std::make_unique<Storage>(*other.storage_)) {}
  FixedTensor& operator=(const FixedTensor& other) {
    if (this != &other) *storage_ = *other.storage_;
    return *this;
  }
  FixedTensor(FixedTensor&&) noexcept = default;
  FixedTensor& operator=(FixedTensor&&) noexcept = default;
  ~FixedTensor() = default;

  T* data() { return storage_->values.data(); }
  const T* data() const { return storage_->values.data(); }
  std::span<T> span() { return {data(), size}; }
  std::span<const T> span() const { return {data(), size}; }
  TensorRef ref() const { return TensorRef(data(), dtype_of<T>(), shape); }

  /// The element at a full index, row-major.
  template <class... Index>
    requires(sizeof...(Index) == rank)
  T& operator()(Index... index) {
    return data()[flat(index...)];
  }
  template <class... Index>
    requires(sizeof...(Index) == rank)
  const T& operator()(Index... index) const {
    return data()[flat(index...)];
  }

  /// Copies an array of exactly this shape in; anything else is a ShapeError naming both shapes.
  void assign(const xt::xarray<T>& values) {
    if (!std::equal(values.shape().begin(), values.shape().end(), shape.begin(), shape.end())) {
      throw ShapeError(fmt::format("FixedTensor::assign: an array of shape ({}) given for shape ({})",
                                   fmt::join(values.shape(), ", "), fmt::join(shape, ", ")));
    }
    std::copy(values.begin(), values.end(), data());
  }

 private:
  template <class... Index>
  static std::size_t flat(Index... index) {
    std::size_t at = 0, axis = 0;
    ((at = at * shape[axis++] + static_cast<std::size_t>(index)), ...);
    return at;
  }
  struct Storage {
    alignas(64) std::array<T, size> values{};
  };
  std::unique_ptr<Storage> storage_;
};

/// The scratch memory of a generated model: one block of a size fixed at build time, where every
/// value has its constant offset.
template <std::size_t Bytes>
class FixedArena {
 public:
  std::byte* data() { return block_->bytes.data(); }
  const std::byte* data() const { return block_->bytes.data(); }

 private:
  struct Block {
    alignas(64) std::array<std::byte, Bytes> bytes{};
  };
  std::unique_ptr<Block> block_ = std::make_unique<Block>();
};

namespace generated {

/// A parameter's initial values, drawn from the model's generator exactly as Graph::param draws
/// them, so that a generated model and a graph made with the same seed start out equal.
template <class T>
void initialize(std::mt19937_64& rng, const Init& init, std::span<T> values) {
  std::vector<double> drawn(values.size());
  draw_initial_values(rng, init, drawn);
  std::transform(drawn.begin(), drawn.end(), values.begin(), [](double v) { return static_cast<T>(v); });
}

/// A checkpoint entry for a fixed tensor.
template <class T, std::size_t... Dims>
CheckpointTensor checkpoint_tensor(std::string name, const FixedTensor<T, Dims...>& t) {
  return {std::move(name), const_cast<T*>(t.data()), dtype_of<T>(), {Dims...}};
}

/// One kind of per-parameter optimizer state of a generated model ("exp_avg"), held as a second
/// Parameters struct.
template <class Parameters>
struct OptimizerSlot {
  std::string_view slot;
  const Parameters* values = nullptr;
};

/// What a generated model's checkpoint holds: its parameters by graph name, the optimizer's state
/// (named as optim::Optimizer names it, parameter by parameter) with its kind and step count, and
/// the counters, as Trainer saves them. An empty kind: the parameters alone.
template <class Parameters>
CheckpointContents checkpoint_contents(const Parameters& params, std::string_view optimizer_kind,
                                       const std::vector<OptimizerSlot<Parameters>>& state,
                                       std::int64_t optimizer_steps, std::uint64_t run_index) {
  CheckpointContents contents;
  contents.params = params.named();
  contents.run_index = run_index;
  if (optimizer_kind.empty()) return contents;
  contents.optimizer_kind = std::string(optimizer_kind);
  contents.optimizer_steps = optimizer_steps;
  std::vector<std::vector<CheckpointTensor>> slots;
  for (const OptimizerSlot<Parameters>& s : state) slots.push_back(s.values->named());
  for (std::size_t k = 0; k < contents.params.size(); ++k) {
    for (std::size_t s = 0; s < state.size(); ++s) {
      CheckpointTensor t = std::move(slots[s][k]);
      t.name = optimizer_state_name(state[s].slot, t.name);
      contents.optimizer_state.push_back(std::move(t));
    }
  }
  return contents;
}

}  // namespace generated
}  // namespace xg
