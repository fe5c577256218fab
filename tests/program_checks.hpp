#pragma once
// What the compiler tests ask of a Program: how many rewrites a pass made, whether two values are
// the same bits (the passes' promise is bit for bit, not a tolerance), and where its dump places a node.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "xgrad/xgrad.hpp"

namespace xg::testing {

inline std::size_t rewrites(const Program& p, std::string_view pass) {
  for (const PassReport& r : p.report().passes) {
    if (r.name == pass) return r.rewrites;
  }
  return 0;
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * size_of(a.dtype())) == 0;
}

/// The index of the first value of two runs' lists that differs in a bit (the shorter list's
/// length when they differ in length), or -1 when every value is the same bits.
template <class Value>
std::ptrdiff_t first_different(const std::vector<Value>& a, const std::vector<Value>& b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t k = 0; k < n; ++k) {
    if constexpr (std::is_same_v<Value, Tensor>) {
      if (!same_bits(a[k], b[k])) return static_cast<std::ptrdiff_t>(k);
    } else if (a[k] != b[k]) {
      return static_cast<std::ptrdiff_t>(k);
    }
  }
  return a.size() == b.size() ? -1 : static_cast<std::ptrdiff_t>(n);
}

/// A scheduled node as Program::dump() shows it: "%id  op  dtype  shape  (operands) ... arena+offset".
struct DumpedNode {
  std::string line;
  std::optional<std::size_t> offset;  // none when the value is not in the arena
  std::vector<int> inputs;
};

inline DumpedNode parse_dumped_node(std::string line) {
  DumpedNode node;
  if (const std::size_t arena = line.find("arena+"); arena != std::string::npos) node.offset = std::stoull(line.substr(arena + 6));
  const std::size_t open = line.find('(', line.find(')')) + 1;  // the operands follow the shape
  const std::string list = line.substr(open, line.find(')', open) - open);
  for (std::size_t p = 0; p < list.size();) {
    node.inputs.push_back(std::stoi(list.substr(p)));
    p = list.find(',', p);
    p = p == std::string::npos ? list.size() : p + 2;
  }
  node.line = std::move(line);
  return node;
}

/// The first scheduled node whose line holds `marker` (" attention_backward ", "gated=true").
inline std::optional<DumpedNode> first_dumped_node(const std::string& dump, std::string_view marker) {
  for (std::size_t at = 0; (at = dump.find(marker, at)) != std::string::npos; at += marker.size()) {
    const std::size_t start = dump.rfind('\n', at) + 1;
    if (dump[start] == '%') return parse_dumped_node(dump.substr(start, dump.find('\n', at) - start));
  }
  return std::nullopt;
}

/// Node `id` of the dump.
inline std::optional<DumpedNode> dumped_node(const std::string& dump, int id) {
  const std::size_t at = dump.find(fmt::format("\n%{} ", id));
  if (at == std::string::npos) return std::nullopt;
  return parse_dumped_node(dump.substr(at + 1, dump.find('\n', at + 1) - at - 1));
}

}  // namespace xg::testing
