#pragma once
// Finite-difference checks of analytic gradients (PyTorch's gradcheck semantics).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "xgrad/compile.hpp"
#include "xgrad/graph.hpp"

namespace xg {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
};

/// The worst element of one checked input or parameter.
struct GradcheckEntry {
  std::string name;
  double max_abs_error = 0.0;
  double max_rel_error = 0.0;  // |analytic - numeric| / max(|numeric|, atol)
  std::int64_t worst_index = -1;
  double analytic = 0.0, numeric = 0.0;  // at the worst element
  bool passed = true;
};

struct GradcheckReport {
  std::vector<GradcheckEntry> entries;
  bool passed() const;
  double max_abs_error() const;
  double max_rel_error() const;
  std::string summary() const;
};

/// Compares d y / d x from grad() with central differences (y(x+eps) - y(x-eps)) / 2eps for every
/// element of every x in wrt (inputs or parameters, f64). An element passes when
/// |analytic - numeric| <= atol + rtol * |numeric|. A non-scalar y is checked through sum(y * w) with
/// fixed weights w in [0.5, 1.5), which exercises every output element with a distinct weight.
/// The graph is copied: neither it nor its parameter values change.
GradcheckReport gradcheck(const Graph& graph, Var y, const std::vector<Var>& wrt,
                          std::span<const Feed> feeds = {}, const GradcheckOptions& options = {});

}  // namespace xg
