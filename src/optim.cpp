#include "xgrad/optim.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include <fmt/format.h>

#include "xgrad/kernels/simd.hpp"
#include "xgrad/format.hpp"

namespace xg::optim {

namespace {

std::vector<ParamGroup> single_group(std::vector<Var> params) { return {ParamGroup{.params = std::move(params)}}; }

/// Whether a component of `name`, split at dots and underscores, is "pos" or starts with "position".
bool has_positional_component(std::string_view name) {
  std::size_t at = 0;
  while (at <= name.size()) {
    const std::size_t end = std::min(name.find_first_of("._", at), name.size());
    const std::string_view part = name.substr(at, end - at);
    if (part == "pos" || part.starts_with("position")) return true;
    at = end + 1;
  }
  return false;
}

}  // namespace

bool decayed_by_default(std::string_view name, std::int64_t rank) { return rank >= 2 && !has_positional_component(name); }

bool decayed_by_default(Var param) { return decayed_by_default(param.node().name, param.rank()); }

std::vector<ParamGroup> weight_decay_groups(std::span<const Var> params) {
  std::vector<ParamGroup> groups{{}, {.weight_decay = 0.0}};
  for (Var p : params) groups[decayed_by_default(p) ? 0 : 1].params.push_back(p);
  return groups;
}

Optimizer::Optimizer(Graph& graph, std::vector<Var> params) : Optimizer(graph, single_group(std::move(params))) {}

Optimizer::Optimizer(Graph& graph, std::vector<ParamGroup> groups) : graph_(&graph), groups_(std::move(groups)) {
  for (std::size_t group = 0; group < groups_.size(); ++group) {
    const ParamGroup& g = groups_[group];
    if (!(g.lr_scale >= 0.0 && std::isfinite(g.lr_scale)) || (g.weight_decay && !(*g.weight_decay >= 0.0))) {
      throw ValueError(fmt::format("optimizer: parameter group {} has lr_scale {} and weight_decay {}; both must be >= 0",
                                   group, g.lr_scale, g.weight_decay ? fmt::format("{}", *g.weight_decay) : "unset"));
    }
    for (Var p : g.params) {
      if (!p.valid() || &p.graph() != graph_ || p.node().op_name() != "param") {
        throw ValueError(fmt::format("optimizer: {} is not a parameter of this graph", p.describe()));
      }
      for (std::size_t k = 0; k < params_.size(); ++k) {
        if (params_[k].id() == p.id()) {
          throw ValueError(fmt::format("optimizer: parameter '{}' appears twice (in groups {} and {}); a parameter "
                                       "belongs to one group", p.node().name, group_of_[k], group));
        }
      }
      params_.push_back(p);
      group_of_.push_back(group);
    }
  }
  graph_order_.resize(params_.size());
  std::iota(graph_order_.begin(), graph_order_.end(), std::size_t{0});
  std::sort(graph_order_.begin(), graph_order_.end(),
            [&](std::size_t a, std::size_t b) { return params_[a].id() < params_[b].id(); });
  ordered_grads_.resize(params_.size());
}

Tensor Optimizer::zeros_like_param(std::size_t slot) const {
  const Var p = params_[slot];
  return Tensor::zeros(p.dtype(), p.shape());
}

double global_norm(std::span<const TensorRef> grads) {
  double sum = 0.0;
  for (const TensorRef& g : grads) {
    std::size_t n = 1;
    for (std::size_t d : g.shape) n *= d;
    visit_float(g.dtype, [&]<class T>() {
      const T* x = static_cast<const T*>(g.data);
      for (std::size_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    });
  }
  return std::sqrt(sum);
}

StepInfo clipping(std::span<const TensorRef> grads, std::optional<double> clip_norm) {
  StepInfo info;
  if (clip_norm) {  // the norm costs a pass over every gradient: taken only when clipping needs it
    info.grad_norm = global_norm(grads);
    if (info.grad_norm > *clip_norm) info.clip_scale = *clip_norm / (info.grad_norm + 1e-6);
  }
  return info;
}

StepInfo Optimizer::step(std::span<const TensorRef> grads, double lr) {
  if (grads.size() != params_.size()) {
    throw ValueError(fmt::format("optimizer step: {} gradients for {} parameters", grads.size(), params_.size()));
  }
  for (std::size_t k = 0; k < params_.size(); ++k) {
    const Var p = params_[k];
    const TensorRef& g = grads[k];
    const bool same_shape = std::equal(g.shape.begin(), g.shape.end(), p.shape().begin(), p.shape().end(),
                                       [](std::size_t a, std::int64_t b) { return static_cast<std::int64_t>(a) == b; });
    if (g.dtype != p.dtype() || !same_shape) {
      throw ShapeError(fmt::format("optimizer step: the gradient for '{}' is {} ({}), the parameter {} {}",
                                   p.node().name, g.dtype, fmt::join(g.shape, ", "), p.dtype(), p.shape()));
    }
  }
  for (std::size_t k = 0; k < graph_order_.size(); ++k) ordered_grads_[k] = grads[graph_order_[k]];
  const StepInfo info = clipping(ordered_grads_, clip_norm);
  ++steps_;
  for (std::size_t k = 0; k < params_.size(); ++k) {
    Tensor& value = graph_->value(params_[k]);
    const auto n = static_cast<std::size_t>(value.numel());
    visit_float(value.dtype(), [&]<class T>() {
      update(k, std::span<T>(static_cast<T*>(value.data()), n), std::span<const T>(static_cast<const T*>(grads[k].data), n),
             static_cast<T>(info.clip_scale), lr * groups_[group_of_[k]].lr_scale);
    });
  }
  return info;
}

// ---- SGD ----

SGD::SGD(Graph& graph, std::vector<Var> params, SGDOptions options)
    : SGD(graph, single_group(std::move(params)), options) {}

SGD::SGD(Graph& graph, std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer(graph, std::move(groups)), options_(options) {
  check_options(options_);
  if (options_.momentum > 0.0) {
    for (std::size_t k = 0; k < this->params().size(); ++k) momentum_.push_back(zeros_like_param(k));
  }
}

void SGD::update(std::size_t slot, std::span<float> p, std::span<const float> g, float s, double lr) { apply(slot, p, g, s, lr); }
void SGD::update(std::size_t slot, std::span<double> p, std::span<const double> g, double s, double lr) { apply(slot, p, g, s, lr); }

template <class T>
void SGD::apply(std::size_t slot, std::span<T> p, std::span<const T> g, T s, double lr) {
  SGDOptions options = options_;
  options.weight_decay = weight_decay(slot, options_.weight_decay);
  sgd_update(p, g, momentum_.empty() ? nullptr : static_cast<T*>(momentum_[slot].data()), s, lr, steps(), options);
}

void check_options(const SGDOptions& options) {
  if (options.momentum < 0.0 || options.weight_decay < 0.0) {
    throw ValueError(fmt::format("SGD: momentum {} and weight_decay {} must be >= 0", options.momentum, options.weight_decay));
  }
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    throw ValueError("SGD: Nesterov momentum needs momentum > 0 and no dampening");
  }
}

template <class T>
void sgd_update(std::span<T> p, std::span<const T> g, T* momentum_buffer, T grad_scale, double lr, std::int64_t step,
                const SGDOptions& options) {
  const T wd = static_cast<T>(options.weight_decay), mu = static_cast<T>(options.momentum),
          damp = static_cast<T>(1.0 - options.dampening), rate = static_cast<T>(lr);
  const bool first = step == 1;
  for (std::size_t i = 0; i < p.size(); ++i) {
    T d = g[i] * grad_scale + wd * p[i];
    if (momentum_buffer != nullptr) {
      momentum_buffer[i] = first ? d : mu * momentum_buffer[i] + damp * d;
      d = options.nesterov ? d + mu * momentum_buffer[i] : momentum_buffer[i];
    }
    p[i] -= rate * d;
  }
}
template void sgd_update(std::span<float>, std::span<const float>, float*, float, double, std::int64_t, const SGDOptions&);
template void sgd_update(std::span<double>, std::span<const double>, double*, double, double, std::int64_t,
                         const SGDOptions&);

std::vector<Optimizer::StateTensor> SGD::state() {
  std::vector<StateTensor> out;
  for (std::size_t k = 0; k < momentum_.size(); ++k) out.push_back({"momentum_buffer", k, &momentum_[k]});
  return out;
}

// ---- Adam / AdamW ----

Adam::Adam(Graph& graph, std::vector<Var> params, AdamOptions options)
    : Adam(graph, single_group(std::move(params)), options) {}

Adam::Adam(Graph& graph, std::vector<ParamGroup> groups, AdamOptions options)
    : Optimizer(graph, std::move(groups)), options_(options) {
  if (!(options_.beta1 >= 0.0 && options_.beta1 < 1.0 && options_.beta2 >= 0.0 && options_.beta2 < 1.0)) {
    throw ValueError(fmt::format("Adam: betas must be in [0, 1), got ({}, {})", options_.beta1, options_.beta2));
  }
  if (!(options_.eps > 0.0) || options_.weight_decay < 0.0) {
    throw ValueError(fmt::format("Adam: eps {} must be > 0 and weight_decay {} >= 0", options_.eps, options_.weight_decay));
  }
  for (std::size_t k = 0; k < this->params().size(); ++k) {
    first_moment_.push_back(zeros_like_param(k));
    second_moment_.push_back(zeros_like_param(k));
  }
}

void Adam::update(std::size_t slot, std::span<float> p, std::span<const float> g, float s, double lr) { apply(slot, p, g, s, lr); }
void Adam::update(std::size_t slot, std::span<double> p, std::span<const double> g, double s, double lr) { apply(slot, p, g, s, lr); }

template <class T>
void Adam::apply(std::size_t slot, std::span<T> p, std::span<const T> g, T s, double lr) {
  AdamOptions options = options_;
  options.weight_decay = weight_decay(slot, options_.weight_decay);
  adam_update(p, g, static_cast<T*>(first_moment_[slot].data()), static_cast<T*>(second_moment_[slot].data()), s, lr,
              steps(), options);
}

template <class T>
void adam_update(std::span<T> p, std::span<const T> g, T* first_moment, T* second_moment, T grad_scale, double lr,
                 std::int64_t step, const AdamOptions& options) {
  const auto t = static_cast<double>(step);
  const T b1 = static_cast<T>(options.beta1), b2 = static_cast<T>(options.beta2), eps = static_cast<T>(options.eps);
  // PyTorch's arrangement: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
  const T step_size = static_cast<T>(lr / (1.0 - std::pow(options.beta1, t)));
  const T root_correction = static_cast<T>(std::sqrt(1.0 - std::pow(options.beta2, t)));
  const T l2 = options.decoupled_weight_decay ? T(0) : static_cast<T>(options.weight_decay);
  const T decay = options.decoupled_weight_decay ? static_cast<T>(1.0 - lr * options.weight_decay) : T(1);
  // One generic body for SIMD batches and the scalar tail; V(c) broadcasts a constant.
  kernels::update_with_state(p.data(), g.data(), first_moment, second_moment, static_cast<std::int64_t>(p.size()),
                             [&]<class V>(V& pi, V gi, V& mi, V& vi) {
                               using std::sqrt;
                               const V d = gi * V(grad_scale) + V(l2) * pi;
                               mi = V(b1) * mi + V(T(1) - b1) * d;
                               vi = V(b2) * vi + V(T(1) - b2) * d * d;
                               pi = pi * V(decay) - V(step_size) * mi / (sqrt(vi) / V(root_correction) + V(eps));
                             });
}
template void adam_update(std::span<float>, std::span<const float>, float*, float*, float, double, std::int64_t,
                          const AdamOptions&);
template void adam_update(std::span<double>, std::span<const double>, double*, double*, double, double, std::int64_t,
                          const AdamOptions&);

std::vector<Optimizer::StateTensor> Adam::state() {
  std::vector<StateTensor> out;
  for (std::size_t k = 0; k < first_moment_.size(); ++k) {
    out.push_back({"exp_avg", k, &first_moment_[k]});
    out.push_back({"exp_avg_sq", k, &second_moment_[k]});
  }
  return out;
}

// ---- schedules ----

double WarmupCosine::operator()(std::int64_t step) const {
  if (step < warmup) return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double span = static_cast<double>(std::max<std::int64_t>(total - warmup, 1));
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

double WarmupInverseSqrt::operator()(std::int64_t step) const {
  const double s = static_cast<double>(step + 1), w = static_cast<double>(std::max<std::int64_t>(warmup, 1));
  return peak_lr * std::min(s / w, std::sqrt(w / s));
}

}  // namespace xg::optim
