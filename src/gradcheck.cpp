#include "xgrad/gradcheck.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "xgrad/op_def.hpp"
#include "xgrad/autodiff.hpp"
#include "xgrad/format.hpp"
#include "xgrad/ops.hpp"

namespace xg {

bool GradcheckReport::passed() const {
  return std::all_of(entries.begin(), entries.end(), [](const GradcheckEntry& e) { return e.passed; });
}

double GradcheckReport::max_abs_error() const {
  double worst = 0.0;
  for (const auto& e : entries) worst = std::max(worst, e.max_abs_error);
  return worst;
}

double GradcheckReport::max_rel_error() const {
  double worst = 0.0;
  for (const auto& e : entries) worst = std::max(worst, e.max_rel_error);
  return worst;
}

std::string GradcheckReport::summary() const {
  std::string out;
  for (const auto& e : entries) {
    out += fmt::format("{:<24} max abs {:.3e}  max rel {:.3e}  worst at {} (analytic {:.8g}, numeric {:.8g})  {}\n",
                       e.name, e.max_abs_error, e.max_rel_error, e.worst_index, e.analytic, e.numeric,
                       e.passed ? "ok" : "FAILED");
  }
  return out;
}

namespace {

/// Weights in [0.5, 1.5) that reduce a non-scalar output to a scalar, distinct per element.
Tensor projection_weights(const Shape& shape) {
  xt::xarray<double> w = xt::zeros<double>(std::vector<std::size_t>(shape.begin(), shape.end()));
  std::uint64_t state = 0x2545F4914F6CDD1DULL;
  for (double& v : w) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    v = 0.5 + static_cast<double>(state >> 11) * 0x1.0p-53;
  }
  return Tensor(std::move(w));
}

}  // namespace

GradcheckReport gradcheck(const Graph& graph, Var y, const std::vector<Var>& wrt, std::span<const Feed> feeds,
                          const GradcheckOptions& options) {
  Graph g = graph;  // the copy owns its parameter values, which we perturb
  auto here = [&](Var v) {
    if (!v.valid() || &v.graph() != &graph) throw ValueError(fmt::format("gradcheck: {} is not from this graph", v.describe()));
    return g.var(v.id());
  };
  Var objective = here(y);
  if (objective.dtype() != DType::f64) {
    throw DTypeError(fmt::format("gradcheck: {} is {}; gradient checks need an f64 graph", y.describe(), y.dtype()));
  }
  if (objective.shape().numel() != 1) objective = sum(objective * g.constant(projection_weights(objective.shape())));
  std::vector<Var> targets;
  for (Var w : wrt) {
    const Var t = here(w);
    if (t.node().op != &op_input && t.node().op != &op_param) {
      throw ValueError(fmt::format("gradcheck: {} is neither an input nor a parameter", w.describe()));
    }
    if (t.dtype() != DType::f64) {
      throw DTypeError(fmt::format("gradcheck: {} is {}; gradient checks need f64", w.describe(), t.dtype()));
    }
    targets.push_back(t);
  }
  const std::vector<Var> analytic_vars = grad(g, objective, targets);

  // Our own copies of the feeds, so that inputs can be perturbed.
  std::vector<Tensor> feed_values;
  std::vector<Feed> local_feeds;
  for (const Feed& f : feeds) {
    const Var v = here(f.var);
    feed_values.push_back(visit_dtype(f.value.dtype, [&]<class T>() {
      std::vector<std::size_t> shape(f.value.shape.begin(), f.value.shape.end());
      xt::xarray<T> a = xt::zeros<T>(shape);
      std::copy_n(static_cast<const T*>(f.value.data), a.size(), a.data());
      return Tensor(std::move(a));
    }));
    local_feeds.push_back(Feed{v, TensorRef{}});
  }
  for (std::size_t i = 0; i < feed_values.size(); ++i) local_feeds[i].value = TensorRef(feed_values[i]);

  std::vector<Var> outputs = analytic_vars;
  Program with_grads = compile(g, outputs);
  with_grads.run(local_feeds);
  Program forward = compile(g, {objective});
  auto evaluate = [&] {
    forward.run(local_feeds);
    return forward.get<double>(objective)();
  };

  GradcheckReport report;
  for (std::size_t k = 0; k < targets.size(); ++k) {
    const Var t = targets[k];
    const xt::xarray<double> analytic = with_grads.get<double>(analytic_vars[k]);
    double* values = nullptr;
    if (t.node().op == &op_param) {
      values = g.value(t).as<double>().data();
    } else {
      for (std::size_t i = 0; i < local_feeds.size(); ++i) {
        if (local_feeds[i].var.id() == t.id()) values = feed_values[i].as<double>().data();
      }
      if (values == nullptr) throw FeedError(fmt::format("gradcheck: no feed for input {}", wrt[k].describe()));
    }
    GradcheckEntry entry{t.node().name};
    for (std::int64_t i = 0, n = t.shape().numel(); i < n; ++i) {
      const double saved = values[i];
      values[i] = saved + options.eps;
      const double up = evaluate();
      values[i] = saved - options.eps;
      const double down = evaluate();
      values[i] = saved;
      const double numeric = (up - down) / (2.0 * options.eps);
      const double a = analytic.flat(static_cast<std::size_t>(i));
      const double abs_error = std::fabs(a - numeric);
      const double rel_error = abs_error / std::max(std::fabs(numeric), options.atol);
      const bool ok = abs_error <= options.atol + options.rtol * std::fabs(numeric);
      if (abs_error > entry.max_abs_error || entry.worst_index < 0) {
        entry.max_abs_error = abs_error;
        entry.worst_index = i;
        entry.analytic = a;
        entry.numeric = numeric;
      }
      entry.max_rel_error = std::max(entry.max_rel_error, rel_error);
      entry.passed = entry.passed && ok && std::isfinite(a);
    }
    report.entries.push_back(entry);
  }
  return report;
}

}  // namespace xg
