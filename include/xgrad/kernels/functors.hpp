#pragma once
// The elementwise functions, written once generically: each is called with xsimd batches for the
// body of a loop and with plain scalars for its tail (see simd.hpp). `cpp_name` is how generated
// code names the same functor, so that a generated model computes with the very same expression.
#include <cmath>
#include <numbers>
#include <string_view>
#include <type_traits>

#include "xgrad/kernels/simd.hpp"

namespace xg::kernels::functors {

template <class V>
inline constexpr bool is_scalar_v = std::is_arithmetic_v<V>;

struct Neg {
  static constexpr std::string_view cpp_name = "Neg";
  template <class V> V operator()(V x) const { return -x; }
};
struct Exp {
  static constexpr std::string_view cpp_name = "Exp";
  template <class V> V operator()(V x) const { using std::exp; return exp(x); }
};
struct Log {
  static constexpr std::string_view cpp_name = "Log";
  template <class V> V operator()(V x) const { using std::log; return log(x); }
};
struct Sqrt {
  static constexpr std::string_view cpp_name = "Sqrt";
  template <class V> V operator()(V x) const { using std::sqrt; return sqrt(x); }
};
// xsimd::rsqrt is an approximation on some targets; 1/sqrt keeps f64 gradient checks exact.
struct Rsqrt {
  static constexpr std::string_view cpp_name = "Rsqrt";
  template <class V> V operator()(V x) const { using std::sqrt; return V(1) / sqrt(x); }
};
struct Square {
  static constexpr std::string_view cpp_name = "Square";
  template <class V> V operator()(V x) const { return x * x; }
};
struct Tanh {
  static constexpr std::string_view cpp_name = "Tanh";
  template <class V> V operator()(V x) const { using std::tanh; return tanh(x); }
};
struct Erf {
  static constexpr std::string_view cpp_name = "Erf";
  template <class V> V operator()(V x) const { using std::erf; return erf(x); }
};
struct Sigmoid {
  static constexpr std::string_view cpp_name = "Sigmoid";
  template <class V> V operator()(V x) const { using std::exp; return V(1) / (V(1) + exp(-x)); }
};
struct Relu {
  static constexpr std::string_view cpp_name = "Relu";
  template <class V> V operator()(V x) const { using std::max; return max(x, V(0)); }
};
struct GeluErf {
  static constexpr std::string_view cpp_name = "GeluErf";
  template <class V> V operator()(V x) const {
    using std::erf;
    return V(0.5) * x * (V(1) + erf(x * V(std::numbers::sqrt2 / 2)));
  }
};
inline constexpr double kGeluTanhScale = 0.7978845608028654;  // sqrt(2 / pi)
inline constexpr double kGeluTanhCubic = 0.044715;
struct GeluTanh {
  static constexpr std::string_view cpp_name = "GeluTanh";
  template <class V> V operator()(V x) const {
    using std::tanh;
    return V(0.5) * x * (V(1) + tanh(V(kGeluTanhScale) * (x + V(kGeluTanhCubic) * x * x * x)));
  }
};

struct Add {
  static constexpr std::string_view cpp_name = "Add";
  template <class V> V operator()(V a, V b) const { return a + b; }
};
struct Sub {
  static constexpr std::string_view cpp_name = "Sub";
  template <class V> V operator()(V a, V b) const { return a - b; }
};
struct Mul {
  static constexpr std::string_view cpp_name = "Mul";
  template <class V> V operator()(V a, V b) const { return a * b; }
};
struct Div {
  static constexpr std::string_view cpp_name = "Div";
  template <class V> V operator()(V a, V b) const { return a / b; }
};

template <class Cmp>
struct Compare {
  using Comparison = Cmp;  // generated code names it Compare<...>
  template <class V> V operator()(V a, V b) const {
    if constexpr (is_scalar_v<V>) {
      return Cmp{}(a, b) ? V(1) : V(0);
    } else {
      return xsimd::select(Cmp{}(a, b), V(1), V(0));
    }
  }
};
struct Greater {
  static constexpr std::string_view cpp_name = "Greater";
  template <class V> auto operator()(V a, V b) const { return a > b; }
};
struct Less {
  static constexpr std::string_view cpp_name = "Less";
  template <class V> auto operator()(V a, V b) const { return a < b; }
};
struct Equal {
  static constexpr std::string_view cpp_name = "Equal";
  template <class V> auto operator()(V a, V b) const { return a == b; }
};
struct NotEqual {
  static constexpr std::string_view cpp_name = "NotEqual";
  template <class V> auto operator()(V a, V b) const { return a != b; }
};

}  // namespace xg::kernels::functors
