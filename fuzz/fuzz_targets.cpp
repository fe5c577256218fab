#include "fuzz_targets.hpp"

#include <limits>
#include <span>
#include <stdexcept>

#include <fmt/format.h>
#include <xgrad/xgrad.hpp>

namespace xg::fuzz {

void safetensors(const std::uint8_t* data, std::size_t size) {
  try {
    const SafetensorsContent content = parse_safetensors(std::span<const std::uint8_t>(data, size));
    // What parsed must survive a round trip through the writer's layout.
    for (const auto& [name, tensor] : content.tensors) (void)tensor.numel();
  } catch (const Error&) {
  }
}

namespace {

/// Bytes consumed front to back; zeros once they run out, so every input is a complete program.
class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t next() { return at_ < size_ ? data_[at_++] : 0; }
  bool done() const { return at_ >= size_; }
  int below(int n) { return next() % n; }
  Shape shape() {
    std::vector<std::int64_t> dims(static_cast<std::size_t>(below(4)));
    for (auto& d : dims) d = below(4);  // extents 0..3: empty tensors included
    return Shape(std::move(dims));
  }
  /// Rank 2 to 4, every extent at least 2^32: any two multiply past int64, so no such shape (nor
  /// one derived from it) can be a node's.
  Shape huge_shape() {
    static constexpr std::int64_t extents[] = {std::int64_t{1} << 32, std::int64_t{1} << 40, std::int64_t{1} << 62,
                                               std::numeric_limits<std::int64_t>::max()};
    std::vector<std::int64_t> dims(static_cast<std::size_t>(2 + below(3)));
    for (auto& d : dims) d = extents[below(4)];
    return Shape(std::move(dims));
  }
  /// One of a few extreme slice bounds and steps.
  std::int64_t extreme() {
    static constexpr std::int64_t values[] = {std::numeric_limits<std::int64_t>::min(), -1, 1, 2,
                                              std::numeric_limits<std::int64_t>::max()};
    return values[below(5)];
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

Var pick(std::vector<Var>& vars, Bytes& b) { return vars[static_cast<std::size_t>(b.below(static_cast<int>(vars.size())))]; }

/// Applies one op, chosen by the next byte, to values chosen by the following ones.
Var apply_op(std::vector<Var>& vars, Var labels, Bytes& b) {
  const Var x = pick(vars, b);
  const int axis = b.below(7) - 3;
  switch (b.below(30)) {
    case 0: return -x;
    case 1: return exp(x);
    case 2: return log(x);
    case 3: return sqrt(x);
    case 4: return tanh(x);
    case 5: return sigmoid(x);
    case 6: return relu(x);
    case 7: return gelu(x, b.below(2) ? GeluApprox::tanh : GeluApprox::none);
    case 8: return x + pick(vars, b);
    case 9: return x - pick(vars, b);
    case 10: return x * pick(vars, b);
    case 11: return x / pick(vars, b);
    case 12: return sum(x, {axis}, b.below(2) == 1);
    case 13: return mean(x, {axis}, b.below(2) == 1);
    case 14: return max(x, {axis}, b.below(2) == 1);
    case 15: return reshape(x, b.shape());
    case 16: return transpose(x, axis, b.below(7) - 3);
    case 17: return slice(x, axis, b.below(5) - 2, b.below(5) - 1, b.below(3) + (b.below(4) == 0 ? -1 : 0));
    case 18: return concat({x, pick(vars, b)}, axis);
    case 19: return squeeze(x, axis);
    case 20: return unsqueeze(x, axis);
    case 21: return matmul(x, pick(vars, b), b.below(2) == 1, b.below(2) == 1);
    case 22: return softmax(x, axis);
    case 23: return log_softmax(x, axis);
    case 24: return layer_norm(x, b.below(3));
    case 25: return broadcast_to(x, b.shape());
    case 26: return where(greater(x, pick(vars, b)), x, pick(vars, b));
    case 27: return dropout(x, b.below(4) * 0.25);
    case 28: {
      CrossEntropyOptions o;
      o.class_axis = axis;
      o.reduction = static_cast<Reduction>(b.below(3));
      o.label_smoothing = b.below(3) * 0.1;
      return cross_entropy(x, labels, o);
    }
    default: return stop_gradient(x) * x;
  }
}

/// Whether a shape's byte count fits in int64, zero extents skipped: what the library promises of
/// every node. Computed here independently of the library's own arithmetic, which is under test.
bool countable(Var v) {
  std::int64_t bytes = static_cast<std::int64_t>(size_of(v.dtype()));
  for (std::int64_t d : v.shape()) {
    if (d < 0 || (d > 0 && __builtin_mul_overflow(bytes, d, &bytes))) return false;
  }
  return true;
}

/// Sizes too large to count: each attempt either is refused with an xg::Error before anything is
/// allocated, or makes a node whose size fits. Every kind is tried on every input; the bytes choose
/// the shapes. Large operands are inputs, which cost nothing until a Program is compiled.
void oversized(Bytes& b) {
  Graph g(0, DType::f32);
  constexpr std::int64_t two_32 = std::int64_t{1} << 32;
  const Var x = g.input("x", b.shape());
  const Var column = g.input("column", {two_32, 1}), row = g.input("row", {1, two_32});
  const Var longest = g.input("longest", {(std::int64_t{1} << 61) - 1});  // 2^63 - 4 bytes
  const Var half = g.input("half", {std::int64_t{1} << 60}), other_half = g.input("other_half", {std::int64_t{1} << 60});
  for (int kind = 0; kind < 10; ++kind) {
    try {
      Var made;
      switch (kind) {
        case 0: made = g.input(fmt::format("huge_{}", kind), b.huge_shape()); break;
        case 1: made = g.param(fmt::format("huge_{}", kind), b.huge_shape(), Init::zeros()); break;
        case 2: made = reshape(x, b.huge_shape()); break;
        case 3: {
          Shape s = b.huge_shape();
          s[b.below(s.rank())] = -1;
          made = reshape(x, s);
          break;
        }
        case 4: made = broadcast_to(x, b.huge_shape()); break;
        case 5: made = column * row; break;
        case 6: made = matmul(reshape(column, {two_32, 1, 1, 1}), reshape(row, {1, two_32, 1, 1})); break;
        case 7: made = concat(std::vector<Var>(static_cast<std::size_t>(2 + b.below(4)), longest), 0); break;
        case 8: made = slice(x, b.below(4) - 2, b.extreme(), b.extreme(), b.extreme()); break;
        default: compile(g, {half + other_half}); break;  // would need an arena past 2^63 bytes
      }
      if (made.valid() && !countable(made)) {
        throw std::logic_error(fmt::format("oversized kind {}: {} was made with shape {}", kind, made.describe(), made.shape()));
      }
    } catch (const Error&) {
      // Refused, as it must be (the slice may also be refused for its axis).
    }
  }
}

}  // namespace

void graph_build(const std::uint8_t* data, std::size_t size) {
  Bytes b(data, size);
  try {
    Graph g(b.next(), b.below(2) ? DType::f64 : DType::f32);
    std::vector<Var> vars{g.input("x", b.shape()), g.param("w", b.shape(), Init::normal(0.0, 1.0)),
                          g.param("v", b.shape(), Init::uniform(0.5, 2.0))};
    const Var labels = g.input("labels", b.shape(), DType::i32);
    for (int op = 0; op < 24 && !b.done(); ++op) {
      try {
        vars.push_back(apply_op(vars, labels, b));
      } catch (const Error&) {
        // Refused at build time, as it should be when the shapes or arguments do not fit.
      }
    }
    Var y = vars.back();
    if (y.shape().numel() != 1) y = sum(y);
    const std::vector<Var> grads = grad(g, y, {vars[1], vars[2]});
    Program p = compile(g, {y, grads[0], grads[1]});
    p.set_check_finite(b.below(2) == 1);
    p.set_training(b.below(2) == 1);
    const Tensor x = Tensor::zeros(vars[0].dtype(), vars[0].shape());
    Tensor l = Tensor::zeros(DType::i32, labels.shape());
    for (auto& v : l.as<std::int32_t>()) v = b.below(5) - 1;
    p.run({{vars[0], TensorRef(x)}, {labels, TensorRef(l)}});
    (void)p.get(y);
  } catch (const Error&) {
  }
  oversized(b);  // with the bytes left over (zeros once they run out)
}

}  // namespace xg::fuzz
