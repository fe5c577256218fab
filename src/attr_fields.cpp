#include "xgrad/attr_fields.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

#include <fmt/format.h>

namespace xg {

namespace {

class Describe {
 public:
  explicit Describe(AttrSpelling spelling) : spelling_(spelling) {}

  AttrDescription operator()(std::monostate) const { return {}; }
  AttrDescription operator()(const AxesAttr& a) const {
    const std::string axes = fmt::format("{}", fmt::join(a.axes, ", "));
    return {"AxesAttr", {{"axes", cpp() ? fmt::format("{{{}}}", axes) : fmt::format("[{}]", axes)}, {"keepdims", flag(a.keepdims)}}};
  }
  AttrDescription operator()(const AxisAttr& a) const { return {"AxisAttr", {{"axis", integer(a.axis)}}}; }
  AttrDescription operator()(const SliceAttr& a) const {
    return {"SliceAttr",
            {{"axis", integer(a.axis)}, {"start", integer(a.start)}, {"stop", integer(a.stop)}, {"step", integer(a.step)},
             {"extent", integer(a.extent)}}};
  }
  AttrDescription operator()(const MatmulAttr& a) const {
    return {"MatmulAttr", {{"transpose_a", flag(a.transpose_a)}, {"transpose_b", flag(a.transpose_b)}}};
  }
  AttrDescription operator()(const NormAttr& a) const {
    return {"NormAttr",
            {{"normalized_ndim", integer(a.normalized_ndim)}, {"eps", real(a.eps)}, {"has_gamma", flag(a.has_gamma)},
             {"has_beta", flag(a.has_beta)}}};
  }
  AttrDescription operator()(const IndexAttr& a) const {
    std::string ignore = a.ignore_index == std::numeric_limits<std::int64_t>::min()
                             ? (cpp() ? "std::numeric_limits<std::int64_t>::min()" : "none")
                             : integer(a.ignore_index);
    return {"IndexAttr", {{"axis", integer(a.axis)}, {"depth", integer(a.depth)}, {"ignore_index", std::move(ignore)}}};
  }
  AttrDescription operator()(const GeluAttr& a) const {
    return {"GeluAttr", {{"approximate", enumerator("GeluApprox", a.approximate == GeluApprox::tanh ? "tanh" : "none")}}};
  }
  AttrDescription operator()(const DropoutAttr& a) const { return {"DropoutAttr", {{"p", real(a.p)}, {"seed", seed(a.seed)}}}; }
  AttrDescription operator()(const AttentionAttr& a) const {
    return {"AttentionAttr",
            {{"scale", real(a.scale)}, {"dropout", real(a.dropout)}, {"seed", seed(a.seed)}, {"has_bias", flag(a.has_bias)},
             {"bias_grad", flag(a.bias_grad)}, {"causal", flag(a.causal)}, {"sequence_major", flag(a.sequence_major)}}};
  }
  AttrDescription operator()(const Init& a) const {
    constexpr std::string_view kinds[] = {"constant", "normal", "uniform"};
    return {"Init", {{"kind", enumerator("Init::Kind", kinds[static_cast<int>(a.kind)])}, {"a", real(a.a)}, {"b", real(a.b)}}};
  }
  AttrDescription operator()(const EpilogueAttr& a) const {
    constexpr std::string_view activations[] = {"none", "relu", "gelu_erf", "gelu_tanh"};
    return {"EpilogueAttr",
            {{"product", nested(Attrs(a.product))}, {"bias", flag(a.bias)},
             {"activation", enumerator("EpilogueActivation", activations[static_cast<int>(a.activation)])},
             {"residual", flag(a.residual)}, {"dropout", real(a.dropout)}, {"seed", seed(a.seed)},
             {"gated", flag(a.gated)}}};
  }
  AttrDescription operator()(const FusedElementwiseAttr& a) const {
    std::vector<std::string> steps;
    for (const ElementwiseInstruction& i : a.program) steps.push_back(instruction(i));
    return {"FusedElementwiseAttr",
            {{"program", cpp() ? fmt::format("{{{}}}", fmt::join(steps, ", ")) : fmt::format("[{}]", fmt::join(steps, ", "))},
             {"row_length", integer(a.row_length)}, {"dropout", real(a.dropout)}, {"seed", seed(a.seed)}}};
  }
  AttrDescription operator()(const SumOfProductAttr& a) const {
    return {"SumOfProductAttr",
            {{"sum", nested(Attrs(a.sum))}, {"negate_a", flag(a.negate_a)}, {"negate_b", flag(a.negate_b)}}};
  }

 private:
  /// cpp: the instruction's initializer; text: "mul(s0, s3)" over the slots (the node's operands,
  /// then one per instruction).
  std::string instruction(const ElementwiseInstruction& i) const {
    const std::string_view op = elementwise_op_name(i.op);
    if (cpp()) {
      return fmt::format("xg::ElementwiseInstruction{{.op = xg::ElementwiseOp::{}, .a = {}, .b = {}, .c = {}}}", op, i.a, i.b, i.c);
    }
    std::vector<std::string> args;
    for (int slot : {i.a, i.b, i.c}) {
      if (slot >= 0) args.push_back(fmt::format("s{}", slot));
    }
    return fmt::format("{}({})", op, fmt::join(args, ", "));
  }
  bool cpp() const { return spelling_ == AttrSpelling::cpp; }
  static std::string flag(bool value) { return value ? "true" : "false"; }
  static std::string integer(std::int64_t value) { return fmt::format("{}", value); }
  std::string seed(std::uint64_t value) const { return cpp() ? fmt::format("{}u", value) : fmt::format("{}", value); }
  std::string real(double value) const {
    if (!cpp()) return fmt::format("{}", value);
    if (std::isnan(value)) return "std::numeric_limits<double>::quiet_NaN()";
    if (std::isinf(value)) return value < 0 ? "-std::numeric_limits<double>::infinity()" : "std::numeric_limits<double>::infinity()";
    return fmt::format("{:a}", value);  // exact
  }
  std::string enumerator(std::string_view type, std::string_view value) const {
    return cpp() ? fmt::format("xg::{}::{}", type, value) : std::string(value);
  }
  std::string nested(const Attrs& attrs) const {
    const AttrDescription inner = std::visit(*this, attrs);
    std::vector<std::string> fields;
    for (const AttrField& f : inner.fields) fields.push_back(cpp() ? fmt::format(".{} = {}", f.name, f.value) : fmt::format("{}={}", f.name, f.value));
    return cpp() ? fmt::format("xg::{}{{{}}}", inner.type, fmt::join(fields, ", ")) : fmt::format("{{{}}}", fmt::join(fields, ", "));
  }

  AttrSpelling spelling_;
};

}  // namespace

std::string_view elementwise_op_name(ElementwiseOp op) {
  constexpr std::string_view names[] = {"neg",  "exp", "log", "sqrt",    "rsqrt",   "square",  "tanh",    "sigmoid",
                                        "relu", "erf", "gelu_erf", "gelu_tanh", "add", "sub", "mul", "div",
                                        "greater", "less", "equal", "not_equal", "where", "dropout_mask"};
  static_assert(std::size(names) == static_cast<std::size_t>(ElementwiseOp::dropout_mask) + 1);
  return names[static_cast<std::size_t>(op)];
}

AttrDescription describe_attrs(const Attrs& attrs, AttrSpelling spelling) { return std::visit(Describe(spelling), attrs); }

std::string attrs_text(const Attrs& attrs) {
  const AttrDescription d = describe_attrs(attrs, AttrSpelling::text);
  std::vector<std::string> fields;
  for (const AttrField& f : d.fields) fields.push_back(fmt::format("{}={}", f.name, f.value));
  return fmt::format("{}", fmt::join(fields, ", "));
}

}  // namespace xg
