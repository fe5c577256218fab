#include "xgrad/graph.hpp"

#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "xgrad/op_def.hpp"
#include "util/checked.hpp"
#include "xgrad/format.hpp"

namespace xg {

const OpDef op_input{.name = "input", .differentiable = false};
const OpDef op_param{.name = "param", .differentiable = false};
const OpDef op_constant{.name = "constant", .differentiable = false};

std::string_view Node::op_name() const { return op->name; }

Graph& Var::graph() const {
  if (graph_ == nullptr) throw ValueError("use of an empty Var (it refers to no graph)");
  return *graph_;
}

const Node& Var::node() const { return graph().node(id_); }

std::string describe(const Node& n, int id) {
  if (n.name.empty()) return fmt::format("node {} ({})", id, n.op_name());
  return fmt::format("node {} ({} '{}')", id, n.op_name(), n.name);
}

std::string Var::describe() const {
  if (!valid()) return "an empty Var";
  return xg::describe(node(), id_);
}

Graph::Graph(std::uint64_t seed, DType float_type)
    : store_(std::make_shared<ValueStore>()), rng_(seed), float_type_(float_type) {
  if (!is_float(float_type)) throw DTypeError("Graph: the float type must be f32 or f64");
}

Graph::Graph(const Graph& other)
    : nodes_(other.nodes_),
      gradient_spans_(other.gradient_spans_),
      store_(std::make_shared<ValueStore>(*other.store_)),
      rng_(other.rng_),
      float_type_(other.float_type_) {}

void Graph::check_new_name(const std::string& name) const {
  if (name.empty()) throw ValueError("inputs and parameters need a name");
  for (const Node& n : nodes_) {
    if ((n.op == &op_input || n.op == &op_param) && n.name == name) {
      throw ValueError(fmt::format("the name '{}' is already used by another {}", name, n.op_name()));
    }
  }
}

namespace {
/// What every node's shape must satisfy, whatever made it: no negative extent, and a byte count that
/// fits in int64 (so do its element count and strides; see checked::product).
void check_shape(const Node& n, int id, const std::deque<Node>& nodes) {
  for (std::int64_t d : n.shape) {
    if (d < 0) throw ShapeError(fmt::format("{}: negative extent in shape {}", describe(n, id), n.shape));
  }
  if (checked::product(n.shape.dims(), static_cast<std::int64_t>(size_of(n.dtype)))) return;
  std::vector<std::string> operands;
  for (int in : n.inputs) operands.push_back(describe(nodes[static_cast<std::size_t>(in)], in));
  throw ShapeError(fmt::format("{}: shape {} of {} is too large: its size in bytes does not fit in 64 bits{}", describe(n, id),
                               n.shape, n.dtype, operands.empty() ? "" : fmt::format(" (operands: {})", fmt::join(operands, ", "))));
}
}  // namespace

Var Graph::append(Node node) {
  node.scope = current_scope();
  check_shape(node, size(), nodes_);
  nodes_.push_back(std::move(node));
  return Var(this, size() - 1);
}

Var Graph::input(std::string name, Shape shape, DType dtype) {
  check_new_name(name);
  return append(Node{&op_input, {}, {}, dtype, std::move(shape), std::move(name), {}});
}

Var Graph::param(std::string name, Shape shape, Init init) {
  return param(std::move(name), std::move(shape), init, float_type_);
}

Var Graph::param(std::string name, Shape shape, Init init, DType dtype) {
  check_new_name(name);
  if (!is_float(dtype)) throw DTypeError(fmt::format("param '{}': parameters must be f32 or f64", name));
  if (init.kind != Init::Kind::constant && !(init.b >= init.a || init.kind == Init::Kind::normal)) {
    throw ValueError(fmt::format("param '{}': uniform init needs low <= high", name));
  }
  Node node{&op_param, {}, init, dtype, std::move(shape), std::move(name), current_scope()};
  check_shape(node, size(), nodes_);  // before the values are allocated
  xt::xarray<double> values = xt::zeros<double>(std::vector<std::size_t>(node.shape.begin(), node.shape.end()));
  draw_initial_values(rng_, init, std::span<double>(values.data(), values.size()));
  nodes_.push_back(std::move(node));
  store_->values.emplace(size() - 1, Tensor(std::move(values)).cast(dtype));
  return Var(this, size() - 1);
}

void draw_initial_values(std::mt19937_64& rng, const Init& init, std::span<double> values) {
  auto unit = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  for (double& v : values) {
    switch (init.kind) {
      case Init::Kind::constant: v = init.a; break;
      case Init::Kind::uniform: v = init.a + (init.b - init.a) * unit(); break;
      case Init::Kind::normal: {
        const double u1 = 1.0 - unit(), u2 = unit();
        v = init.a + init.b * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
        break;
      }
    }
  }
}

Var Graph::constant(Tensor value, std::string name) {
  Shape shape = value.shape();
  const Var v = append(Node{&op_constant, {}, {}, value.dtype(), std::move(shape), std::move(name), {}});
  store_->values.emplace(v.id(), std::move(value));
  return v;
}

Var Graph::scalar(double value, DType dtype) {
  return constant(visit_dtype(dtype, [&]<class T>() { return Tensor(xt::xarray<T>(static_cast<T>(value))); }));
}

Var Graph::add_node(const OpDef& op, const std::vector<Var>& inputs, Attrs attrs, DType dtype, Shape shape,
                    std::string name) {
  Node node{&op, {}, std::move(attrs), dtype, std::move(shape), std::move(name), {}};
  for (Var v : inputs) {
    check_owned(v, op.name);
    node.inputs.push_back(v.id());
  }
  return append(std::move(node));
}

void Graph::check_owned(Var v, std::string_view what) const {
  if (!v.valid() || &v.graph() != this || v.id() < 0 || v.id() >= size()) {
    throw ValueError(fmt::format("{}: operand {} belongs to another graph", what, v.describe()));
  }
}

const std::string& Graph::current_scope() const {
  static const std::string none;
  return scopes_.empty() ? none : scopes_.back().path;
}

namespace {
std::string join_scope(const std::string& outer, std::string_view name) {
  return outer.empty() ? std::string(name) : fmt::format("{}.{}", outer, name);
}
}  // namespace

Scope::Scope(Graph& graph, std::string path, std::string layer) : graph_(graph), restored_depth_(graph.scopes_.size()) {
  graph_.scopes_.push_back({std::move(path), std::move(layer)});
}

Scope::Scope(Graph& graph, std::string_view name)
    : Scope(graph,
            [&] {
              if (name.empty()) throw ValueError("Scope: a scope needs a name");
              return join_scope(graph.current_scope(), name);
            }(),
            std::string{}) {}

Scope Scope::layer(Graph& graph, std::string_view name) {
  const std::string& current = graph.current_scope();
  const std::string_view outer_layer = graph.scopes_.empty() ? std::string_view{} : graph.scopes_.back().layer;
  if (name.empty() || name == outer_layer) return Scope(graph, current, std::string(outer_layer));
  if (!outer_layer.empty() && name.size() > outer_layer.size() && name.starts_with(outer_layer) &&
      name[outer_layer.size()] == '.') {
    return Scope(graph, current + std::string(name.substr(outer_layer.size())), std::string(name));
  }
  return Scope(graph, join_scope(current, name), std::string(name));
}

Scope Scope::at(Graph& graph, std::string path) { return Scope(graph, std::move(path), std::string{}); }

Scope::~Scope() { graph_.scopes_.resize(restored_depth_); }

std::string_view scope_prefix(std::string_view path, int depth) {
  std::size_t end = 0;
  for (int level = 0; level < depth; ++level) {
    const std::size_t dot = path.find('.', level == 0 ? 0 : end + 1);
    if (dot == std::string_view::npos) return path;
    end = dot;
  }
  return path.substr(0, end);
}

bool Graph::is_gradient(int id) const {
  for (const auto& [first, last] : gradient_spans_) {
    if (id >= first && id < last) return true;
  }
  return false;
}

Var Graph::find(std::string_view name) {
  for (int id = 0; id < size(); ++id) {
    const Node& n = nodes_[static_cast<std::size_t>(id)];
    if ((n.op == &op_input || n.op == &op_param) && n.name == name) return Var(this, id);
  }
  throw ValueError(fmt::format("the graph has no input or parameter named '{}'", name));
}

std::vector<Var> Graph::params() {
  std::vector<Var> out;
  for (int id = 0; id < size(); ++id) {
    if (nodes_[static_cast<std::size_t>(id)].op == &op_param) out.emplace_back(this, id);
  }
  return out;
}

std::vector<Var> Graph::inputs() {
  std::vector<Var> out;
  for (int id = 0; id < size(); ++id) {
    if (nodes_[static_cast<std::size_t>(id)].op == &op_input) out.emplace_back(this, id);
  }
  return out;
}

Tensor& Graph::value(Var leaf) {
  return const_cast<Tensor&>(static_cast<const Graph&>(*this).value(leaf));
}

const Tensor& Graph::value(Var leaf) const {
  check_owned(leaf, "Graph::value");
  auto it = store_->values.find(leaf.id());
  if (it == store_->values.end()) {
    throw ValueError(fmt::format("{} has no stored value: only parameters and constants have one", leaf.describe()));
  }
  return it->second;
}

}  // namespace xg
