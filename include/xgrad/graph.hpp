#pragma once
// Graph: an append-only list of nodes, each with its shape and dtype fixed when it is created.
// Var: a cheap handle to one node of one graph.
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "xgrad/attrs.hpp"
#include "xgrad/scope.hpp"
#include "xgrad/tensor.hpp"

namespace xg {

struct OpDef;  // an op's kernel and gradient rule; defined in src/ops
class Graph;

struct Node {
  const OpDef* op = nullptr;
  std::vector<int> inputs;
  Attrs attrs;
  DType dtype = DType::f32;
  Shape shape;
  std::string name;  // inputs and params always have one; other nodes may
  std::string scope;  // the layer it was built in ("encoder.0.self_attn"; see scope.hpp), "" for none

  std::string_view op_name() const;
};

/// "node 12 (matmul 'scores')": how errors name node `id`.
std::string describe(const Node& n, int id);

/// A handle to one node. Cheap to copy; valid while its Graph lives (a Graph never moves).
class Var {
 public:
  Var() = default;
  Var(Graph* graph, int id) : graph_(graph), id_(id) {}

  bool valid() const { return graph_ != nullptr; }
  Graph& graph() const;
  int id() const { return id_; }
  const Node& node() const;
  const Shape& shape() const { return node().shape; }
  DType dtype() const { return node().dtype; }
  int rank() const { return shape().rank(); }
  /// "node 12 (matmul 'scores')": how errors name a node.
  std::string describe() const;

 private:
  Graph* graph_ = nullptr;
  int id_ = -1;
};

/// Fills `values` as `init` says, drawing from `rng` (the graph's generator): uniform takes one
/// 64-bit draw per value, normal two. Our own transforms of the 64-bit stream, so that the same seed
/// gives the same values with any standard library, and generated models replay it exactly.
void draw_initial_values(std::mt19937_64& rng, const Init& init, std::span<double> values);

/// Parameter and constant values. Programs compiled from a graph share it, so an optimizer step
/// taken through one Program is seen by every other (a training and an evaluation program).
struct ValueStore {
  std::unordered_map<int, Tensor> values;  // node id -> value; references stay valid on insert
};

/// Every node's shape is checked when the node is made: no negative extent, and a byte count that
/// fits in 64 bits (zero extents skipped, as NumPy does); otherwise ShapeError naming the node.
///
/// Every node records the scope it was built in (scope.hpp): a name for pictures, nothing more.
///
/// A Graph cannot be moved: every Var holds its address, and a move would leave them all dangling.
/// Make it where it is used (a local, a member, or behind a std::unique_ptr).
class Graph {
 public:
  /// `seed` drives parameter initialisation and dropout streams; `float_type` is the dtype of
  /// parameters, scalars and masks unless a call says otherwise.
  explicit Graph(std::uint64_t seed = 0, DType float_type = DType::f32);
  /// Deep: the copy owns its own parameter values. Vars of the original still refer to the original;
  /// the copy's are `copy.var(v.id())`.
  Graph(const Graph& other);
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&&) = delete;
  Graph& operator=(Graph&&) = delete;
  ~Graph() = default;

  DType float_type() const { return float_type_; }

  Var input(std::string name, Shape shape, DType dtype);
  Var input(std::string name, Shape shape) { return input(std::move(name), std::move(shape), float_type_); }
  Var param(std::string name, Shape shape, Init init);
  Var param(std::string name, Shape shape, Init init, DType dtype);
  Var constant(Tensor value, std::string name = {});
  Var scalar(double value, DType dtype);
  Var scalar(double value) { return scalar(value, float_type_); }

  /// Appends a node; used by the op builders, which have already checked and inferred everything.
  Var add_node(const OpDef& op, const std::vector<Var>& inputs, Attrs attrs, DType dtype, Shape shape,
               std::string name = {});

  int size() const { return static_cast<int>(nodes_.size()); }
  const Node& node(int id) const { return nodes_.at(static_cast<std::size_t>(id)); }
  Var var(int id) { return Var(this, id); }
  /// The input or parameter of that name; throws ValueError if there is none.
  Var find(std::string_view name);
  std::vector<Var> params();
  std::vector<Var> inputs();

  /// The value of a parameter or constant.
  Tensor& value(Var leaf);
  const Tensor& value(Var leaf) const;
  const std::shared_ptr<ValueStore>& store() const { return store_; }

  /// Nodes [first, last) were built by grad(): gradient nodes, drawn apart in pictures.
  void mark_gradient(int first, int last) { gradient_spans_.emplace_back(first, last); }
  bool is_gradient(int id) const;

  /// A fresh 64-bit seed from the graph's generator (dropout streams).
  std::uint64_t next_seed() { return rng_(); }

  /// The scope new nodes are recorded in ("" outside any); open one with xg::Scope.
  const std::string& current_scope() const;

 private:
  friend class Scope;

  void check_owned(Var v, std::string_view what) const;
  void check_new_name(const std::string& name) const;
  /// Appends `node` after checking its shape (ShapeError naming it); returns its Var.
  Var append(Node node);

  // A deque: appending never moves a node, so references from Var::node() and Var::shape() stay
  // valid while builders add nodes (f(x.shape(), g(x)) may evaluate its arguments in any order).
  std::deque<Node> nodes_;
  std::vector<std::pair<int, int>> gradient_spans_;
  struct OpenScope {
    std::string path;   // what nodes record
    std::string layer;  // the full name of the layer that opened it (Scope::layer), "" for other scopes
  };
  std::vector<OpenScope> scopes_;  // innermost last; a copy of the graph starts with none open
  std::shared_ptr<ValueStore> store_;
  std::mt19937_64 rng_;
  DType float_type_;
};

}  // namespace xg
