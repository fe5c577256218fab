// fused_elementwise: a tree of elementwise ops (and dropout masks) computed in one pass over the
// output, made by the compiler from the graph's separate ops (compiler/passes/fuse_elementwise.cpp).
// Each instruction calls its op's own functor through its op's own loop (map_unary, map_binary,
// where's select, dropout_mask) over tiles laid so that every element takes the path (SIMD batch
// or scalar tail) it takes in the separate kernel: results agree bit for bit with the unfused
// program, and generated code (emit) runs the same loops with every size a literal.
#include "xgrad/kernels/dropout.hpp"
#include "xgrad/kernels/functors.hpp"
#include "xgrad/kernels/fused_elementwise.hpp"
#include "xgrad/kernels/simd.hpp"
#include "ops/emit_util.hpp"
#include "xgrad/op_def.hpp"

namespace xg {
namespace {

using namespace kernels::functors;

/// Calls f(functor) with the functor of a unary or binary instruction; false for where and masks.
template <class F>
bool with_functor(ElementwiseOp op, F&& f) {
  switch (op) {
    case ElementwiseOp::neg: f(Neg{}); return true;
    case ElementwiseOp::exp: f(Exp{}); return true;
    case ElementwiseOp::log: f(Log{}); return true;
    case ElementwiseOp::sqrt: f(Sqrt{}); return true;
    case ElementwiseOp::rsqrt: f(Rsqrt{}); return true;
    case ElementwiseOp::square: f(Square{}); return true;
    case ElementwiseOp::tanh: f(Tanh{}); return true;
    case ElementwiseOp::sigmoid: f(Sigmoid{}); return true;
    case ElementwiseOp::relu: f(Relu{}); return true;
    case ElementwiseOp::erf: f(Erf{}); return true;
    case ElementwiseOp::gelu_erf: f(GeluErf{}); return true;
    case ElementwiseOp::gelu_tanh: f(GeluTanh{}); return true;
    case ElementwiseOp::add: f(Add{}); return true;
    case ElementwiseOp::sub: f(Sub{}); return true;
    case ElementwiseOp::mul: f(Mul{}); return true;
    case ElementwiseOp::div: f(Div{}); return true;
    case ElementwiseOp::greater: f(Compare<Greater>{}); return true;
    case ElementwiseOp::less: f(Compare<Less>{}); return true;
    case ElementwiseOp::equal: f(Compare<Equal>{}); return true;
    case ElementwiseOp::not_equal: f(Compare<NotEqual>{}); return true;
    case ElementwiseOp::where:
    case ElementwiseOp::dropout_mask: return false;
  }
  return false;
}

template <class F>
constexpr bool is_binary_functor = requires(F f) { f(0.0, 0.0); };

template <class T>
void run_program(const FusedElementwiseAttr& attr, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const std::int64_t row_length = attr.row_length, rows = out.numel() / row_length;
  const std::size_t operands = in.size();
  std::array<std::optional<kernels::BroadcastRows>, kernels::kMaxFusedOperands> layout;
  for (std::size_t k = 0; k < operands; ++k) layout[k] = kernels::BroadcastRows::make(out.dims(), in[k].dims(), row_length);
  const std::size_t last = attr.program.size() - 1;
  T* y_base = out.as<T>();
  kernels::for_each_tile(ctx.pool, rows, row_length, [&](std::int64_t row, std::int64_t begin, std::int64_t n) {
    alignas(64) T temps[kernels::kMaxFusedInstructions][kernels::kFusedTile];
    struct Source {
      const T* data;
      std::int64_t step;
    };
    const auto source = [&](int slot) {
      const auto s = static_cast<std::size_t>(slot);
      if (s < operands) {
        const kernels::BroadcastRows& rows_of = *layout[s];
        return Source{in[s].as<T>() + rows_of.at(row) + begin * rows_of.step(), rows_of.step()};
      }
      return Source{temps[s - operands], 1};
    };
    for (std::size_t i = 0; i <= last; ++i) {
      const ElementwiseInstruction& instruction = attr.program[i];
      T* y = i == last ? y_base + row * row_length + begin : temps[i];
      if (instruction.op == ElementwiseOp::where) {
        const Source c = source(instruction.a), a = source(instruction.b), b = source(instruction.c);
        kernels::select_where(c.data, c.step, a.data, a.step, b.data, b.step, y, n);
        continue;
      }
      if (instruction.op == ElementwiseOp::dropout_mask) {
        kernels::dropout_mask(y, n, attr.dropout, attr.seed, ctx.run_index, ctx.training, row * row_length + begin);
        continue;
      }
      with_functor(instruction.op, [&]<class F>(F f) {
        if constexpr (is_binary_functor<F>) {
          const Source a = source(instruction.a), b = source(instruction.b);
          kernels::map_binary(a.data, a.step, b.data, b.step, y, n, f);
        } else {
          kernels::map_unary(source(instruction.a).data, y, n, f);  // its operand has the output's shape
        }
      });
    }
  });
}

void fused_elementwise_kernel(const Node& node, std::span<const Buffer> in, const Buffer& out, const RunContext& ctx) {
  const auto& attr = std::get<FusedElementwiseAttr>(node.attrs);
  visit_float(out.dtype, [&]<class T>() { run_program<T>(attr, in, out, ctx); });
}

// ---- generated code: the same tiles and loops, every size, stride and row offset a literal ----

/// The element offset of row `row` of this operand as a C++ expression over `row`.
std::string row_offset(const kernels::BroadcastRows& rows, std::int64_t row_length, std::int64_t row_count) {
  // A full-shape operand's rows follow one another: the common case reads as such.
  std::vector<std::string> terms;
  bool full = rows.step() == 1;
  std::int64_t expected = row_length;
  for (int axis = rows.leading_axes() - 1; axis >= 0; --axis) {
    if (rows.extent(axis) != 1 && rows.stride(axis) != expected) full = false;
    expected *= rows.extent(axis);
  }
  if (full) return row_count == 1 ? std::string("0") : fmt::format("row * {}", row_length);
  for (int axis = 0; axis < rows.leading_axes(); ++axis) {
    if (rows.stride(axis) == 0 || rows.extent(axis) == 1) continue;
    std::string index = rows.rows_below(axis) == 1 ? std::string("row") : fmt::format("row / {}", rows.rows_below(axis));
    if (rows.rows_below(axis) * rows.extent(axis) < row_count) index = fmt::format("({}) % {}", index, rows.extent(axis));
    terms.push_back(fmt::format("({}) * {}", index, rows.stride(axis)));
  }
  return terms.empty() ? std::string("0") : fmt::format("{}", fmt::join(terms, " + "));
}

std::string_view functor_name(ElementwiseOp op) {
  switch (op) {
    case ElementwiseOp::neg: return "Neg";
    case ElementwiseOp::exp: return "Exp";
    case ElementwiseOp::log: return "Log";
    case ElementwiseOp::sqrt: return "Sqrt";
    case ElementwiseOp::rsqrt: return "Rsqrt";
    case ElementwiseOp::square: return "Square";
    case ElementwiseOp::tanh: return "Tanh";
    case ElementwiseOp::sigmoid: return "Sigmoid";
    case ElementwiseOp::relu: return "Relu";
    case ElementwiseOp::erf: return "Erf";
    case ElementwiseOp::gelu_erf: return "GeluErf";
    case ElementwiseOp::gelu_tanh: return "GeluTanh";
    case ElementwiseOp::add: return "Add";
    case ElementwiseOp::sub: return "Sub";
    case ElementwiseOp::mul: return "Mul";
    case ElementwiseOp::div: return "Div";
    case ElementwiseOp::greater: return "Compare<xg::kernels::functors::Greater>";
    case ElementwiseOp::less: return "Compare<xg::kernels::functors::Less>";
    case ElementwiseOp::equal: return "Compare<xg::kernels::functors::Equal>";
    case ElementwiseOp::not_equal: return "Compare<xg::kernels::functors::NotEqual>";
    case ElementwiseOp::where:
    case ElementwiseOp::dropout_mask: break;
  }
  return {};
}

std::string emit_fused_elementwise(const EmitArgs& a) {
  const auto& attr = std::get<FusedElementwiseAttr>(a.node.attrs);
  const std::int64_t row_length = attr.row_length, rows = a.output.shape->numel() / row_length;
  const std::string type(emit::cpp_type(a.output.dtype));
  const std::size_t last = attr.program.size() - 1;
  // Per operand slot: the pointer at the tile's start and the stride along the row.
  std::vector<std::pair<std::string, std::int64_t>> sources;
  for (const EmitOperand& operand : a.inputs) {
    const auto layout = kernels::BroadcastRows::make(a.output.shape->dims(), operand.shape->dims(), row_length);
    if (!layout) return {};  // the pass makes none such; the interpreter would say so
    const std::string offset = row_offset(*layout, row_length, rows);
    const std::string start = layout->step() == 0 ? offset : (offset == "0" ? std::string("j") : fmt::format("{} + j", offset));
    sources.emplace_back(start == "0" ? operand.pointer : fmt::format("{} + ({})", operand.pointer, start), layout->step());
  }
  for (std::size_t i = 0; i < last; ++i) sources.emplace_back(fmt::format("t[{}]", i), 1);
  const auto slot = [&](int s) -> const std::pair<std::string, std::int64_t>& { return sources[static_cast<std::size_t>(s)]; };
  std::string body;
  for (std::size_t i = 0; i <= last; ++i) {
    const ElementwiseInstruction& instruction = attr.program[i];
    const std::string y = i == last ? fmt::format("{} + ({}j)", a.output.pointer, rows == 1 ? "" : fmt::format("row * {} + ", row_length))
                                    : fmt::format("t[{}]", i);
    if (instruction.op == ElementwiseOp::where) {
      body += fmt::format("  xg::kernels::select_where({}, {}, {}, {}, {}, {}, {}, n);\n", slot(instruction.a).first, slot(instruction.a).second,
                          slot(instruction.b).first, slot(instruction.b).second, slot(instruction.c).first, slot(instruction.c).second, y);
    } else if (instruction.op == ElementwiseOp::dropout_mask) {
      body += fmt::format("  xg::kernels::dropout_mask({}, n, {:a}, {}, {}.run_index, {}.training, {}j);\n", y, attr.dropout, a.seed,
                          a.context, a.context, rows == 1 ? "" : fmt::format("row * {} + ", row_length));
    } else if (instruction.b >= 0) {
      body += fmt::format("  xg::kernels::map_binary({}, {}, {}, {}, {}, n, xg::kernels::functors::{}{{}});\n", slot(instruction.a).first,
                          slot(instruction.a).second, slot(instruction.b).first, slot(instruction.b).second, y, functor_name(instruction.op));
    } else {
      body += fmt::format("  xg::kernels::map_unary({}, {}, n, xg::kernels::functors::{}{{}});\n", slot(instruction.a).first, y,
                          functor_name(instruction.op));
    }
  }
  return fmt::format(
      "xg::kernels::for_each_tile({}.pool, {}, {}, [&]([[maybe_unused]] std::int64_t row, std::int64_t j, std::int64_t n) {{\n"
      "  alignas(64) {} t[{}][xg::kernels::kFusedTile];\n{}}});",
      a.context, rows, row_length, type, last, body);
}

}  // namespace

// Never differentiated: it exists only in compiled programs, after grad() has run.
const OpDef op_fused_elementwise{.name = "fused_elementwise", .forward = fused_elementwise_kernel, .differentiable = false,
                                 .elementwise = true, .emit = emit_fused_elementwise};

}  // namespace xg
