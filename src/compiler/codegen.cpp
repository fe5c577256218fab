// generate_cpp(): two compiled Programs (evaluation forward, training step) written out as one C++
// class. Each kernel call becomes a statement: the op's emitter, where it has one, spells the call
// with its sizes and strides as literals; otherwise the op's own forward function is called with a
// constant node and constant buffers. Either way the same kernel code runs as in Program::run, on
// the same arena offsets, so the results agree bit for bit.
#include "xgrad/codegen.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <variant>

#include <fmt/format.h>

#include "io/atomic_file.hpp"
#include "ops/emit_util.hpp"
#include "runtime/program_impl.hpp"
#include "xgrad/attr_fields.hpp"
#include "xgrad/autodiff.hpp"
#include "xgrad/compile.hpp"
#include "xgrad/format.hpp"
#include "xgrad/optim.hpp"

namespace xg {
namespace {

using ProgramImpl = ProgramAccess::Impl;

/// A C++ identifier for a parameter or input name ("layers.0.norm1.weight" -> "layers_0_norm1_weight").
std::string identifier(std::string_view name) {
  std::string id;
  for (char c : name) id += std::isalnum(static_cast<unsigned char>(c)) != 0 ? c : '_';
  if (id.empty() || std::isdigit(static_cast<unsigned char>(id[0])) != 0) id.insert(0, "_");
  return id;
}

/// Exact literals: hexadecimal floating point loses nothing.
std::string number(double v, DType dtype) {
  if (dtype == DType::i32) return fmt::format("{}", static_cast<std::int64_t>(v));
  if (!std::isfinite(v)) {
    const std::string type(emit::cpp_type(dtype));
    if (std::isnan(v)) return fmt::format("std::numeric_limits<{}>::quiet_NaN()", type);
    return fmt::format("{}std::numeric_limits<{}>::infinity()", v < 0 ? "-" : "", type);
  }
  return dtype == DType::f32 ? fmt::format("{:a}f", static_cast<float>(v)) : fmt::format("{:a}", v);
}

std::string dims(const Shape& shape) { return fmt::format("{}", fmt::join(shape.dims(), ", ")); }

std::string dtype_cpp(DType dtype) { return fmt::format("xg::DType::{}", dtype); }

/// The attributes as a C++ initializer with designated fields; `seed`, when given, is the
/// expression of the stream seed.
std::string attrs_cpp(const Attrs& attrs, std::string_view seed = {}) {
  const AttrDescription d = describe_attrs(attrs, AttrSpelling::cpp);
  if (d.type.empty()) return "{}";
  std::vector<std::string> fields;
  for (const AttrField& f : d.fields) {
    fields.push_back(fmt::format(".{} = {}", f.name, f.name == "seed" && !seed.empty() ? std::string(seed) : f.value));
  }
  return fmt::format("xg::{}{{{}}}", d.type, fmt::join(fields, ", "));
}

std::string string_literal(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

struct Parameter {
  int node;
  std::string name, member;
};

/// `code` with every non-empty line prefixed by `indent`.
std::string indented(std::string_view code, std::string_view indent) {
  std::string out;
  for (std::size_t begin = 0; begin < code.size();) {
    std::size_t end = code.find('\n', begin);
    if (end == std::string_view::npos) end = code.size();
    if (end > begin) out += fmt::format("{}{}\n", indent, code.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

/// Source-level declarations, written in this order: constants, shapes, then the nodes (which name shapes).
enum class Declaration : std::uint8_t { constant, shape, node };

/// The whole translation: the graph, the names it gives to leaves, and the source-level
/// declarations the step bodies need (constants, shapes, nodes), each written once.
class Writer {
 public:
  /// `data_namespace`: where the source declares the constants, shapes and nodes, named after the
  /// class so that two generated models can share a translation unit (a unity build).
  Writer(Graph& graph, std::string data_namespace) : graph_(graph), data_namespace_(std::move(data_namespace)) {
    std::map<std::string, std::string> named;  // member -> graph name
    for (int id = 0; id < graph.size(); ++id) {
      const Node& n = graph.node(id);
      if (const auto seed = stream_seed(n.attrs); seed && !seed_slot_.contains(*seed)) {
        seed_slot_[*seed] = static_cast<int>(seed_slot_.size());
        seed_drawn_by_[id] = seed_slot_[*seed];
      }
      if (n.op != &op_param && n.op != &op_input) continue;
      const std::string member = identifier(n.name);
      if (auto [it, fresh] = named.emplace(member, n.name); !fresh) {
        throw ValueError(fmt::format("generate_cpp: '{}' and '{}' would both be the member {}", it->second, n.name, member));
      }
      if (n.op == &op_param) parameters_.push_back({id, n.name, member});
    }
  }

  const std::vector<Parameter>& parameters() const { return parameters_; }
  /// Node -> slot of the seed it drew when the graph was built (the model draws it again).
  const std::map<int, int>& seeds_drawn() const { return seed_drawn_by_; }
  std::size_t seed_count() const { return seed_slot_.size(); }
  /// Statements for the constructor: the nodes whose attributes carry a drawn seed.
  const std::string& seeded_node_setup() const { return seeded_setup_; }

  /// The typed data pointer of node `id` in `program`, as an expression in a member function with
  /// a local `arena` (`read_only`: in a const one).
  std::string pointer(const ProgramImpl& program, int node, bool read_only = false) {
    const int id = program.value_of[static_cast<std::size_t>(node)];
    const Node& n = program.nodes[static_cast<std::size_t>(id)];
    const std::string type(emit::cpp_type(n.dtype));
    const Placement& at = program.placement[static_cast<std::size_t>(id)];
    if (at.kind == Placement::Kind::arena) {
      return fmt::format("reinterpret_cast<{}{}*>(arena + {})", read_only ? "const " : "", type, at.offset);
    }
    if (n.op == &op_param) return fmt::format("params.{}.data()", member_of(id));
    const std::string constant = constant_name(program, id);
    return read_only ? constant : fmt::format("const_cast<{}*>({})", type, constant);
  }

  /// The statements of one run of `program`.
  std::string body(const ProgramImpl& program) {
    std::string code;
    bool may_throw = false;
    for (const Step& step : program.steps) {
      const Node& n = program.nodes[static_cast<std::size_t>(step.node)];
      std::vector<EmitOperand> operands;
      for (int in : n.inputs) {
        const Node& operand = program.nodes[static_cast<std::size_t>(in)];
        operands.push_back({pointer(program, in), &operand.shape, operand.dtype});
      }
      const EmitOperand out{pointer(program, step.node), &n.shape, n.dtype};
      const std::string seed = seed_expression(n);
      // A kernel with scratch gets its own context pointing at it.
      const std::string context =
          step.workspace == nullptr
              ? std::string("ctx")
              : fmt::format("xg::RunContext{{ctx.run_index, ctx.training, ctx.pool, arena + {}, {}}}",
                            static_cast<const std::byte*>(step.workspace) - program.arena, step.workspace_bytes);
      std::string call = n.op->emit != nullptr ? n.op->emit({n, operands, out, context, seed}) : std::string();
      code += fmt::format("// %{} {} {} {}\n", step.node, n.op_name(), n.dtype, n.shape);
      if (call.empty()) {
        call = generic_call(program, step.node, operands, out, context);
        may_throw = true;
      }
      code += indented(call, "");
    }
    if (!may_throw) return indented(code, "  ");
    // A kernel that rejects its data (a label out of range) is named as Program::run names it.
    return fmt::format("  const char* at = \"\";\n  try {{\n{}  }} catch (const xg::IndexError& e) {{\n"
                       "    throw xg::IndexError(fmt::format(\"{{}}: {{}}\", at, e.what()));\n  }}\n",
                       indented(code, "    "));
  }

  std::string declarations() const {
    std::string out;
    for (const auto& entry : declared_) out += entry.second;
    return out;
  }

  std::string member_of(int id) const {
    for (const Parameter& p : parameters_) {
      if (p.node == id) return p.member;
    }
    throw ValueError(fmt::format("generate_cpp: node {} is not a parameter", id));
  }

 private:
  /// A graph constant, or one the compiler computed (the same in every program of the graph).
  std::string constant_name(const ProgramImpl& program, int id) {
    const std::string name = fmt::format("constant_{}", id);
    if (declared_.contains({Declaration::constant, name})) return qualified(name);
    const Tensor& value = program.stored_value(id);
    std::vector<std::string> values;
    visit_dtype(value.dtype(), [&]<class T>() {
      const T* data = static_cast<const T*>(value.data());
      for (std::int64_t i = 0; i < value.numel(); ++i) values.push_back(number(static_cast<double>(data[i]), value.dtype()));
    });
    if (values.empty()) values.emplace_back("0");  // a zero-length array is not C++; nothing reads it
    declared_[{Declaration::constant, name}] = fmt::format("alignas(64) const {} {}[] = {{{}}};  // {}\n", emit::cpp_type(value.dtype()), name,
                                       fmt::join(values, ", "), value.shape());
    return qualified(name);
  }

  std::string qualified(std::string_view name) const { return fmt::format("{}::{}", data_namespace_, name); }

  std::string shape_name(const Shape& shape) {
    std::string name = "shape";
    for (std::int64_t d : shape) name += fmt::format("_{}", d);
    if (!declared_.contains({Declaration::shape, name})) declared_[{Declaration::shape, name}] = fmt::format("const xg::Shape {}{{{}}};\n", name, dims(shape));
    return qualified(name);
  }

  std::string seed_expression(const Node& n) const {
    const auto seed = stream_seed(n.attrs);
    return seed ? fmt::format("dropout_seeds_[{}]", seed_slot_.at(*seed)) : std::string();
  }

  /// A constant node for the kernel's `forward`; one whose stream seed the model draws is a member,
  /// made in the constructor.
  std::string node_name(int id, const Node& n) {
    const std::string seed = seed_expression(n);
    if (!seed.empty()) {
      auto [it, fresh] = seeded_index_.emplace(id, seeded_index_.size());
      if (fresh) {
        seeded_setup_ += fmt::format("  seeded_nodes_.push_back(xg::Node{{&xg::op_{}, {{}}, {}, {}, {}, {}, {{}}}});\n", n.op_name(),
                                     attrs_cpp(n.attrs, seed), dtype_cpp(n.dtype), shape_name(n.shape), string_literal(n.name));
      }
      return fmt::format("seeded_nodes_[{}]", it->second);
    }
    const std::string name = fmt::format("node_{}", id);
    if (!declared_.contains({Declaration::node, name})) {
      declared_[{Declaration::node, name}] = fmt::format("const xg::Node {}{{&xg::op_{}, {{}}, {}, {}, {}, {}, {{}}}};\n", name, n.op_name(),
                                         attrs_cpp(n.attrs), dtype_cpp(n.dtype), shape_name(n.shape), string_literal(n.name));
    }
    return qualified(name);
  }

  std::string generic_call(const ProgramImpl& program, int id, const std::vector<EmitOperand>& operands,
                           const EmitOperand& out, std::string_view context) {
    const Node& n = program.nodes[static_cast<std::size_t>(id)];
    std::vector<std::string> buffers;
    for (const EmitOperand& o : operands) buffers.push_back(fmt::format("{{{}, &{}, {}}}", o.pointer, shape_name(*o.shape), dtype_cpp(o.dtype)));
    const std::string description = describe(n, id);
    const std::string operand_span =
        buffers.empty() ? "std::span<const xg::Buffer>()" : fmt::format("std::span<const xg::Buffer>(in, {})", buffers.size());
    const std::string call = fmt::format("xg::op_{}.forward({}, {}, {{{}, &{}, {}}}, {});", n.op_name(), node_name(id, n),
                                         operand_span, out.pointer, shape_name(n.shape), dtype_cpp(n.dtype), context);
    if (buffers.empty()) return fmt::format("at = {};\n{}", string_literal(description), call);
    return fmt::format("at = {};\n{{\n  const xg::Buffer in[] = {{{}}};\n  {}\n}}", string_literal(description),
                       fmt::join(buffers, ", "), call);
  }

  Graph& graph_;
  std::string data_namespace_;
  std::vector<Parameter> parameters_;
  std::map<std::uint64_t, int> seed_slot_;  // seed -> index into the model's drawn seeds
  std::map<int, int> seed_drawn_by_;        // node that drew a seed -> its slot
  std::map<int, std::size_t> seeded_index_;  // node -> index into seeded_nodes_
  std::string seeded_setup_;
  std::map<std::pair<Declaration, std::string>, std::string> declared_;  // in Declaration order
};

bool is_identifier(std::string_view name) {
  return !name.empty() && identifier(name) == name && name[0] != '_';
}

/// A fixed tensor type for a node: xg::FixedTensor<float, 8, 64>.
std::string fixed_tensor(const Node& n) {
  return n.shape.rank() == 0 ? fmt::format("xg::FixedTensor<{}>", emit::cpp_type(n.dtype))
                             : fmt::format("xg::FixedTensor<{}, {}>", emit::cpp_type(n.dtype), dims(n.shape));
}

/// Copies the fed inputs into their arena slots, as Program::run does.
std::string copy_inputs(const ProgramImpl& program) {
  std::string code;
  for (const InputSlot& slot : program.inputs) {
    const Node& n = program.nodes[static_cast<std::size_t>(slot.node)];
    if (!slot.needed || n.shape.numel() == 0) continue;
    code += fmt::format("  std::memcpy(arena + {}, inputs.{}.data(), {});\n",
                        program.placement[static_cast<std::size_t>(slot.node)].offset, identifier(n.name),
                        static_cast<std::size_t>(n.shape.numel()) * size_of(n.dtype));
  }
  return code;
}

void check_spec(Graph& graph, const CodegenSpec& spec) {
  if (!is_identifier(spec.class_name)) {
    throw ValueError(fmt::format("generate_cpp: class name '{}' is not a C++ identifier", spec.class_name));
  }
  if (!spec.model.objective.valid() || &spec.model.objective.graph() != &graph || spec.model.objective.rank() != 0) {
    throw ValueError("generate_cpp: the objective must be a scalar of this graph");
  }
  static const std::set<std::string, std::less<>> taken{"forward", "train_step", "gradients", "last_step", "save", "load",
                                                         "load_parameters", "run_index", "optimizer_steps", "params",
                                                         "description", "arena_bytes"};
  std::set<std::string, std::less<>> names;
  for (const auto& [name, var] : spec.model.outputs) {
    if (!is_identifier(name) || taken.contains(name) || !names.insert(name).second) {
      throw ValueError(fmt::format("generate_cpp: output name '{}' is not a free C++ identifier", name));
    }
    if (!var.valid() || &var.graph() != &graph) throw ValueError(fmt::format("generate_cpp: output '{}' is not of this graph", name));
  }
  if (spec.model.outputs.empty()) throw ValueError("generate_cpp: no outputs for forward()");
}

/// What train_step()'s update looks like for the optimizer the spec chose.
struct OptimizerCode {
  std::string options_type;         // the constructor's options, e.g. "xg::optim::SGDOptions"
  std::string default_options;      // the spec's options as a designated initializer
  std::vector<std::string> slots;   // per-parameter state, as checkpoints name it
  std::string state_in_checkpoint;  // C++ condition under which the state is saved; empty: always
};

OptimizerCode optimizer_code(const optim::OptimizerOptions& optimizer) {
  const auto literal = [](double v) { return number(v, DType::f64); };
  if (const auto* sgd = std::get_if<optim::SGDOptions>(&optimizer)) {
    optim::check_options(*sgd);
    return {"xg::optim::SGDOptions",
            fmt::format("{{.momentum = {}, .dampening = {}, .weight_decay = {}, .nesterov = {}}}", literal(sgd->momentum),
                        literal(sgd->dampening), literal(sgd->weight_decay), sgd->nesterov),
            {"momentum_buffer"},
            "optimizer_.momentum > 0.0"};  // SGD without momentum keeps no state, as optim::SGD
  }
  const auto& adam = std::get<optim::AdamOptions>(optimizer);
  return {"xg::optim::AdamOptions",
          fmt::format("{{.beta1 = {}, .beta2 = {}, .eps = {}, .weight_decay = {}, .decoupled_weight_decay = {}}}",
                      literal(adam.beta1), literal(adam.beta2), literal(adam.eps), literal(adam.weight_decay),
                      adam.decoupled_weight_decay),
          {"exp_avg", "exp_avg_sq"},
          {}};
}

/// The slot's member holding per-parameter optimizer state: "exp_avg" -> "exp_avg_".
std::string state_member(std::string_view slot) { return fmt::format("{}_", slot); }

}  // namespace

GeneratedSources generate_cpp(Graph& graph, const CodegenSpec& spec) {
  check_spec(graph, spec);
  const std::string description = spec.model.description.empty() ? spec.class_name : spec.model.description;
  const std::vector<Var> params = graph.params();
  const std::vector<Var> grads = grad(graph, spec.model.objective, params);
  std::vector<Var> forward_outputs;
  for (const auto& output : spec.model.outputs) forward_outputs.push_back(output.second);
  std::vector<Var> train_outputs{spec.model.objective};
  train_outputs.insert(train_outputs.end(), grads.begin(), grads.end());
  const Program forward = compile(graph, forward_outputs);
  const Program train = compile(graph, train_outputs);
  const ProgramImpl& fp = ProgramAccess::impl(forward);
  const ProgramImpl& tp = ProgramAccess::impl(train);

  Writer w(graph, spec.class_name + "_data");
  const std::string forward_body = w.body(fp), train_body = w.body(tp);
  const std::string& C = spec.class_name;
  const std::size_t arena_bytes = std::max(fp.memory.arena_bytes, tp.memory.arena_bytes);
  std::int64_t scalars = 0;
  for (Var p : params) scalars += p.shape().numel();

  // ---- the header ----
  std::string parameters, inputs, gradients, accessors;
  for (const Parameter& p : w.parameters()) {
    const Node& n = graph.node(p.node);
    parameters += fmt::format("    {} {};  // {}\n", fixed_tensor(n), p.member, string_literal(p.name));
    gradients += fmt::format("    std::span<const {}> {};\n", emit::cpp_type(n.dtype), p.member);
  }
  for (Var in : graph.inputs()) {
    inputs += fmt::format("    {} {};  // {}\n", fixed_tensor(in.node()), identifier(in.node().name), string_literal(in.node().name));
  }
  for (const auto& [name, var] : spec.model.outputs) {
    const std::string type(emit::cpp_type(var.dtype()));
    accessors += var.rank() == 0 ? fmt::format("  {} {}() const;\n", type, name)
                                 : fmt::format("  std::span<const {}> {}() const;  // {}\n", type, name, var.shape());
  }
  const OptimizerCode opt = optimizer_code(spec.model.optimizer);
  std::vector<std::string> state_members;
  for (const std::string& slot : opt.slots) state_members.push_back(state_member(slot));
  GeneratedSources out;
  out.header = fmt::format(R"(// Generated by xgrad's code generator (xg::generate_cpp); do not edit. {description}
#pragma once
#include <xgrad/generated_model.hpp>

namespace xg::generated {{

/// {description}
/// Every shape, stride and arena offset is a constant of this build.
class {C} {{
 public:
  static constexpr std::string_view description = {quoted_description};
  /// Bytes of the one arena that forward() and train_step() share.
  static constexpr std::size_t arena_bytes = {arena_bytes};
  static constexpr std::size_t forward_kernel_calls = {forward_calls}, train_step_kernel_calls = {train_calls};
  static constexpr std::uint64_t train_step_matmul_flops = {flops};
  static constexpr std::int64_t parameter_scalars = {scalars};

  /// The trainable parameters in graph order; member names are the graph's with '.' as '_'.
  struct Parameters {{
{parameters}
    /// Every parameter under its graph name, as checkpoints name it.
    std::vector<xg::CheckpointTensor> named() const;
  }};

  /// What forward() and train_step() read.
  struct Inputs {{
{inputs}
    /// Every input under its graph name, to fill by name.
    std::vector<xg::CheckpointTensor> named();
  }};

  /// d objective / d parameter from the last train_step(), before its update: views into the arena,
  /// valid until the next call.
  struct Gradients {{
{gradients}
    /// Every gradient under its parameter's graph name.
    std::vector<xg::CheckpointTensor> named() const;
  }};

  /// The update train_step() applies: {kind}, with these options unless the constructor is given others.
  using OptimizerOptions = {options_type};
  static constexpr OptimizerOptions default_optimizer{default_options};

  /// Parameters drawn as a Graph with this seed draws them; the optimizer's weight decay {decayed};
  /// global-norm clipping at clip_norm (none: no clipping); kernels split across `threads` threads
  /// (0: the process's default pool), as a Program compiled with that many. Runs flush subnormal
  /// values to zero, as Programs do by default.
  explicit {C}(std::uint64_t seed = 0, OptimizerOptions optimizer = default_optimizer,
      std::optional<double> clip_norm = {clip_norm}, int threads = 0);

  /// Evaluation mode (no dropout). The outputs below hold its results until the next call.
  void forward(const Inputs& inputs);
{accessors}
  /// Training mode: forward, backward, clipping (when on) and one optimizer update with learning
  /// rate lr. Returns the objective before the update.
  {objective_type} train_step(const Inputs& inputs, double lr);
  const Gradients& gradients() const {{ return gradients_; }}
  const xg::optim::StepInfo& last_step() const {{ return last_step_; }}

  /// The checkpoint format of xg::Trainer: parameters, optimizer state and counters, plus `metadata`.
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {{}}) const;
  /// Restores what save() or Trainer::save wrote; returns the metadata.
  std::map<std::string, std::string> load(const std::string& path);
  /// Restores the parameters alone (from any checkpoint of this model, e.g. save_checkpoint(graph)).
  void load_parameters(const std::string& path);

  /// Training steps taken (dropout masks depend on it) and the optimizer's step count.
  std::uint64_t run_index() const {{ return run_index_; }}
  std::int64_t optimizer_steps() const {{ return optimizer_steps_; }}

  Parameters params;

 private:
  void run_forward(std::byte* arena, std::uint64_t run, bool training);
  void run_train_step(std::byte* arena, std::uint64_t run, bool training);

  OptimizerOptions optimizer_;
  std::optional<double> clip_norm_;
  Parameters {state_members};  // the optimizer's per-parameter state
  Gradients gradients_;
  xg::optim::StepInfo last_step_;
  std::uint64_t run_index_ = 0;
  std::int64_t optimizer_steps_ = 0;
  std::array<std::uint64_t, {dropouts}> dropout_seeds_{{}};
  std::vector<xg::Node> seeded_nodes_;  // kernel nodes whose stream seed is one of dropout_seeds_
  xg::FixedArena<arena_bytes> arena_;
  std::shared_ptr<xg::ThreadPool> pool_;
}};

}}  // namespace xg::generated
)",
      fmt::arg("description", description), fmt::arg("quoted_description", string_literal(description)), fmt::arg("C", C),
      fmt::arg("arena_bytes", arena_bytes), fmt::arg("forward_calls", fp.steps.size()), fmt::arg("train_calls", tp.steps.size()),
      fmt::arg("flops", train.matmul_flops()), fmt::arg("scalars", scalars), fmt::arg("parameters", parameters),
      fmt::arg("inputs", inputs), fmt::arg("gradients", gradients), fmt::arg("accessors", accessors),
      fmt::arg("objective_type", emit::cpp_type(spec.model.objective.dtype())), fmt::arg("dropouts", w.seed_count()),
      fmt::arg("kind", optim::optimizer_kind(spec.model.optimizer)), fmt::arg("options_type", opt.options_type),
      fmt::arg("default_options", opt.default_options),
      fmt::arg("decayed", spec.model.decayed == DecayedParameters::all ? "on every parameter"
                                                                 : "only on the parameters optim::decayed_by_default picks"),
      fmt::arg("clip_norm", spec.model.clip_norm ? number(*spec.model.clip_norm, DType::f64) : std::string("std::nullopt")),
      fmt::arg("state_members", fmt::join(state_members, ", ")));

  // ---- the source ----
  std::string init, named, outputs, update;
  for (int id = 0; id < graph.size(); ++id) {
    const Node& n = graph.node(id);
    if (n.op == &op_param) {
      init += fmt::format("  xg::generated::initialize(rng, {}, params.{}.span());\n", attrs_cpp(n.attrs), w.member_of(id));
    } else if (auto slot = w.seeds_drawn().find(id); slot != w.seeds_drawn().end()) {
      init += fmt::format("  dropout_seeds_[{}] = rng();\n", slot->second);
    }
  }
  std::string named_inputs;
  for (Var in : graph.inputs()) {
    named_inputs += fmt::format("      xg::generated::checkpoint_tensor({}, {}),\n", string_literal(in.node().name), identifier(in.node().name));
  }
  std::string named_gradients;
  for (const Parameter& p : w.parameters()) {
    const Node& n = graph.node(p.node);
    named_gradients += fmt::format("      {{{}, const_cast<{}*>({}.data()), {}, {{{}}}}},\n", string_literal(p.name), emit::cpp_type(n.dtype),
                                   p.member, dtype_cpp(n.dtype), dims(n.shape));
  }
  for (const Parameter& p : w.parameters()) named += fmt::format("      xg::generated::checkpoint_tensor({}, {}),\n", string_literal(p.name), p.member);
  for (const auto& [name, var] : spec.model.outputs) {
    const std::string type(emit::cpp_type(var.dtype()));
    const std::string pointer = w.pointer(fp, var.id(), true);
    outputs += var.rank() == 0
                   ? fmt::format("{} {}::{}() const {{\n  const std::byte* arena = arena_.data();\n  return *{};\n}}\n\n", type, C, name, pointer)
                   : fmt::format("std::span<const {}> {}::{}() const {{\n  const std::byte* arena = arena_.data();\n  return {{{}, {}}};\n}}\n\n",
                                 type, C, name, pointer, var.shape().numel());
  }
  std::vector<std::string> refs;
  for (std::size_t k = 0; k < params.size(); ++k) {
    const Parameter& p = w.parameters()[k];
    const std::string type(emit::cpp_type(params[k].dtype()));
    update += fmt::format("  gradients_.{} = std::span<const {}>({}, {});\n", p.member, type, w.pointer(tp, grads[k].id(), true),
                          params[k].shape().numel());
    refs.push_back(fmt::format("xg::TensorRef(gradients_.{0}.data(), {1}, decltype(params.{0})::shape)", p.member, dtype_cpp(params[k].dtype())));
  }
  update += fmt::format("  const std::array<xg::TensorRef, {}> grads{{{}}};\n", refs.size(), fmt::join(refs, ",\n      "));
  update += "  last_step_ = xg::optim::clipping(grads, clip_norm_);\n  ++optimizer_steps_;\n";
  // The weight-decay grouping is decided here, once: optim::adamw_factory's (none on biases, gains and
  // positions), or every parameter alike.
  const auto decayed = [&](Var p) { return spec.model.decayed == DecayedParameters::all || optim::decayed_by_default(p); };
  if (!std::all_of(params.begin(), params.end(), decayed)) {
    update += "  OptimizerOptions no_decay = optimizer_;\n  no_decay.weight_decay = 0.0;\n";
  }
  const bool sgd = std::holds_alternative<optim::SGDOptions>(spec.model.optimizer);
  for (std::size_t k = 0; k < params.size(); ++k) {
    const std::string& m = w.parameters()[k].member;
    const std::string scale = fmt::format("static_cast<{}>(last_step_.clip_scale)", emit::cpp_type(params[k].dtype()));
    const char* options = decayed(params[k]) ? "optimizer_" : "no_decay";
    update += sgd ? fmt::format("  xg::optim::sgd_update(params.{0}.span(), gradients_.{0}, optimizer_.momentum > 0.0 ? "
                                "momentum_buffer_.{0}.data() : nullptr, {1}, lr, optimizer_steps_, {2});\n",
                                m, scale, options)
                  : fmt::format("  xg::optim::adam_update(params.{0}.span(), gradients_.{0}, exp_avg_.{0}.data(), "
                                "exp_avg_sq_.{0}.data(), {1}, lr, optimizer_steps_, {2});\n",
                                m, scale, options);
  }
  std::vector<std::string> slot_list;
  for (const std::string& slot : opt.slots) slot_list.push_back(fmt::format("{{\"{}\", &{}}}", slot, state_member(slot)));
  const std::string slots = fmt::format("std::vector<xg::generated::OptimizerSlot<Parameters>>{{{}}}", fmt::join(slot_list, ", "));
  const std::string checkpoint_state =
      opt.state_in_checkpoint.empty() ? slots
                                      : fmt::format("{} ? {} : std::vector<xg::generated::OptimizerSlot<Parameters>>{{}}",
                                                    opt.state_in_checkpoint, slots);
  const std::string objective_type(emit::cpp_type(spec.model.objective.dtype()));
  out.source = fmt::format(R"(// Generated by xgrad's code generator (xg::generate_cpp); do not edit. {description}
#include "{header}"

#include <xgrad/generated_support.hpp>

namespace xg::generated {{
namespace {{
namespace {C}_data {{

{declarations}
}}  // namespace {C}_data
}}  // namespace

{C}::{C}(std::uint64_t seed, OptimizerOptions optimizer, std::optional<double> clip_norm, int threads)
    : optimizer_(optimizer),
      clip_norm_(clip_norm),
      pool_(xg::ThreadPool::with_threads(threads)) {{
{check_optimizer}  xg::claim_blas_threads();
  // The draws of Graph(seed): every parameter's values and every dropout stream's seed, in graph order.
  std::mt19937_64 rng(seed);
{init}{seeded_nodes}}}

std::vector<xg::CheckpointTensor> {C}::Parameters::named() const {{
  return {{
{named}  }};
}}

std::vector<xg::CheckpointTensor> {C}::Gradients::named() const {{
  return {{
{named_gradients}  }};
}}

std::vector<xg::CheckpointTensor> {C}::Inputs::named() {{
  return {{
{named_inputs}  }};
}}

void {C}::run_forward(std::byte* arena, std::uint64_t run, bool training) {{
  [[maybe_unused]] const xg::RunContext ctx{{run, training, pool_.get()}};
{forward_body}}}

void {C}::run_train_step(std::byte* arena, std::uint64_t run, bool training) {{
  [[maybe_unused]] const xg::RunContext ctx{{run, training, pool_.get()}};
{train_body}}}

void {C}::forward(const Inputs& inputs) {{
  const xg::KernelEnvironment environment(/*flush_denormals=*/true);
  std::byte* const arena = arena_.data();
{forward_inputs}  run_forward(arena, run_index_, false);
}}

{outputs}{objective_type} {C}::train_step(const Inputs& inputs, double lr) {{
  const xg::KernelEnvironment environment(/*flush_denormals=*/true);
  std::byte* const arena = arena_.data();
{train_inputs}  run_train_step(arena, run_index_, true);
  ++run_index_;
  const {objective_type} objective = *{objective};
{update}  return objective;
}}

void {C}::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {{
  xg::CheckpointContents contents = xg::generated::checkpoint_contents(
      params, xg::optim::optimizer_kind(optimizer_), {checkpoint_state}, optimizer_steps_, run_index_);
  contents.metadata = metadata;
  xg::save_checkpoint(path, contents);
}}

std::map<std::string, std::string> {C}::load(const std::string& path) {{
  xg::LoadedState loaded = xg::load_checkpoint(
      path, xg::generated::checkpoint_contents(params, xg::optim::optimizer_kind(optimizer_), {checkpoint_state},
                                               optimizer_steps_, run_index_));
  run_index_ = loaded.run_index;
  optimizer_steps_ = loaded.optimizer_steps;
  return std::move(loaded.metadata);
}}

void {C}::load_parameters(const std::string& path) {{
  xg::load_checkpoint(path, xg::generated::checkpoint_contents<Parameters>(params, {{}}, {{}}, 0, 0));
}}

}}  // namespace xg::generated
)",
      fmt::arg("description", description), fmt::arg("header", spec.header_include), fmt::arg("declarations", w.declarations()),
      fmt::arg("C", C), fmt::arg("init", init), fmt::arg("seeded_nodes", w.seeded_node_setup()), fmt::arg("named", named), fmt::arg("named_inputs", named_inputs), fmt::arg("named_gradients", named_gradients), fmt::arg("forward_body", forward_body),
      fmt::arg("train_body", train_body), fmt::arg("forward_inputs", copy_inputs(fp)), fmt::arg("outputs", outputs),
      fmt::arg("objective_type", objective_type), fmt::arg("train_inputs", copy_inputs(tp)),
      fmt::arg("objective", w.pointer(tp, spec.model.objective.id(), true)), fmt::arg("update", update),
      fmt::arg("checkpoint_state", checkpoint_state),
      fmt::arg("check_optimizer", sgd ? "  xg::optim::check_options(optimizer_);\n" : ""));
  return out;
}

void write_generated_model(Graph& graph, const std::string& class_name, const ModelDefinition& model,
                           const std::filesystem::path& header, const std::filesystem::path& source) {
  const GeneratedSources code = generate_cpp(graph, {class_name, header.filename().string(), model});
  for (const auto& [path, text] : {std::pair{header, &code.header}, std::pair{source, &code.source}}) {
    AtomicFile file(path.string());
    file.write(*text, "the generated code");
    file.commit();
  }
}

}  // namespace xg
