#include "xgrad/format.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace xg {

std::string to_string(const Shape& shape) {
  if (shape.rank() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape.dims(), ", "));
}

namespace {

// How PyTorch chooses a notation: integers print as "3." when every value is whole, scientific
// notation when the magnitudes span more than 1e3 or leave [1e-4, 1e8), fixed otherwise.
enum class Notation { integer, whole_float, fixed, scientific };

Notation choose_notation(const std::vector<double>& values, bool integer_dtype) {
  if (integer_dtype) return Notation::integer;
  double lo = INFINITY, hi = 0.0;
  bool whole = true;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    const double a = std::fabs(v);
    whole = whole && std::nearbyint(v) == v;
    if (a != 0.0) {
      lo = std::min(lo, a);
      hi = std::max(hi, a);
    }
  }
  if (hi == 0.0) return whole ? Notation::whole_float : Notation::fixed;
  if (whole) return hi > 1e8 ? Notation::scientific : Notation::whole_float;
  if (hi / lo > 1000.0 || hi > 1e8 || lo < 1e-4) return Notation::scientific;
  return Notation::fixed;
}

std::string format_value(double v, Notation notation, int precision) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  switch (notation) {
    case Notation::integer: return fmt::format("{}", static_cast<long long>(v));
    case Notation::whole_float: return fmt::format("{:.0f}.", v);
    case Notation::fixed: return fmt::format("{:.{}f}", v, precision);
    case Notation::scientific: return fmt::format("{:.{}e}", v, precision);
  }
  return {};
}

struct Printer {
  const std::vector<double>& values;
  const Shape& shape;
  const PrintOptions& options;
  Notation notation;
  bool summarize;
  std::size_t width = 0;
  std::string out;

  // Indices of axis `axis` that are shown; -1 stands for the "..." between the edges.
  std::vector<std::int64_t> shown(int axis) const {
    const std::int64_t n = shape[axis];
    std::vector<std::int64_t> idx;
    if (summarize && n > 2 * options.edge_items) {
      for (std::int64_t i = 0; i < options.edge_items; ++i) idx.push_back(i);
      idx.push_back(-1);
      for (std::int64_t i = n - options.edge_items; i < n; ++i) idx.push_back(i);
    } else {
      for (std::int64_t i = 0; i < n; ++i) idx.push_back(i);
    }
    return idx;
  }

  void measure(int axis, std::int64_t offset) {
    const std::int64_t stride = stride_of(axis);
    for (std::int64_t i : shown(axis)) {
      if (i < 0) continue;
      if (axis + 1 == shape.rank()) {
        width = std::max(width, format_value(values[static_cast<std::size_t>(offset + i)], notation,
                                             options.precision).size());
      } else {
        measure(axis + 1, offset + i * stride);
      }
    }
  }

  std::int64_t stride_of(int axis) const {
    std::int64_t s = 1;
    for (int a = axis + 1; a < shape.rank(); ++a) s *= shape[a];
    return s;
  }

  void print(int axis, std::int64_t offset, std::size_t indent) {
    out += '[';
    const std::int64_t stride = stride_of(axis);
    const bool last_axis = axis + 1 == shape.rank();
    const std::string row_break =
        "," + std::string(static_cast<std::size_t>(std::max(1, shape.rank() - axis - 1)), '\n') +
        std::string(indent + 1, ' ');
    bool first = true;
    for (std::int64_t i : shown(axis)) {
      if (!first) out += last_axis ? ", " : row_break;
      first = false;
      if (i < 0) {
        out += last_axis ? " ..." : "...";  // PyTorch's spacing
      } else if (last_axis) {
        const std::string s = format_value(values[static_cast<std::size_t>(offset + i)], notation, options.precision);
        out += std::string(width - s.size(), ' ') + s;
      } else {
        print(axis + 1, offset + i * stride, indent + 1);
      }
    }
    out += ']';
  }
};

}  // namespace

std::string to_string(const Tensor& t, const PrintOptions& options) {
  std::vector<double> values = visit_dtype(t.dtype(), [&]<class T>() {
    const auto& a = t.as<T>();
    return std::vector<double>(a.begin(), a.end());
  });
  const Shape shape = t.shape();
  Printer p{values, shape, options, choose_notation(values, t.dtype() == DType::i32),
            t.numel() > options.threshold, 0, {}};
  if (shape.rank() == 0) return fmt::format("tensor({})", format_value(values.at(0), p.notation, options.precision));
  if (t.numel() == 0) return fmt::format("tensor([], size={})", shape);
  p.measure(0, 0);
  p.out = "tensor(";
  p.print(0, 0, 7);
  p.out += ')';
  return p.out;
}

}  // namespace xg
