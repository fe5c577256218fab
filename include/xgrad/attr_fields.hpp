#pragma once
// One description of a node's attributes, field by field, that every writer shares: the graph's
// text dump and Program::dump() print it, and generated code spells it as a C++ initializer with
// designated fields, so that the compiler checks every name and reordering two fields of an
// attribute cannot silently change a generated model.
#include <string>
#include <string_view>
#include <vector>

#include "xgrad/attrs.hpp"

namespace xg {

/// How numbers are written: readable (shortest decimal that reads back the same) or as exact C++
/// literals (hexadecimal floating point, suffixed integers).
enum class AttrSpelling : std::uint8_t { text, cpp };

struct AttrField {
  std::string_view name;
  std::string value;  // a nested attribute is spelled whole
};

struct AttrDescription {
  std::string_view type;  // "MatmulAttr"; empty for a node without attributes
  std::vector<AttrField> fields;
};

/// The enumerator's name ("mul", "gelu_tanh").
std::string_view elementwise_op_name(ElementwiseOp op);

AttrDescription describe_attrs(const Attrs& attrs, AttrSpelling spelling);

/// "transpose_a=true, transpose_b=false"; empty for a node without attributes.
std::string attrs_text(const Attrs& attrs);

}  // namespace xg
