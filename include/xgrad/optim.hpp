#pragma once
// Optimizers, gradient clipping and learning-rate schedules.
//
// Optimizers are runtime kernels over the parameter values the graph stores, not graph nodes: an
// update reads each gradient once and writes each parameter in place, which a graph could only
// express by producing new parameter tensors and copying them back. Each update is a plain loop in a
// fixed order, so training is bit-for-bit reproducible given the seed and the thread count.
// Parameters can be split into groups (ParamGroup) with their own learning-rate scale and weight
// decay, as torch.optim's param_groups; state stays per parameter, so checkpoints do not change.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/tensor.hpp"

namespace xg::optim {

/// What one step saw.
struct StepInfo {
  double grad_norm = 0.0;  // global L2 norm of the gradients before clipping (with clip_norm set; else 0)
  double clip_scale = 1.0;  // factor the gradients were multiplied by (1 when not clipped)
};

/// A set of parameters with its own learning rate and weight decay, as a param_group of torch.optim.
struct ParamGroup {
  std::vector<Var> params{};
  /// Multiplies the learning rate of every step (so that schedules keep working): the group's rate
  /// is lr * lr_scale.
  double lr_scale = 1.0;
  /// Overrides the optimizer's weight decay (its options' weight_decay) for this group.
  std::optional<double> weight_decay{};
};

/// The common practice for weight decay: decay every matrix (weights, embedding tables), but not
/// parameters of rank < 2 (biases, LayerNorm/RMSNorm gains) nor learned positional embeddings
/// (names with a component "pos" or starting with "position" between dots and underscores, such as
/// nn::learned_positions' "tok_embed_pos.weight", "pos_embed" or "position_embeddings").
bool decayed_by_default(std::string_view name, std::int64_t rank);
bool decayed_by_default(Var param);

/// Two groups of `params`, in their order: those decayed_by_default with the optimizer's weight
/// decay, then the rest with none. AdamW's default grouping in adamw_factory.
std::vector<ParamGroup> weight_decay_groups(std::span<const Var> params);

class Optimizer {
 public:
  /// Updates the values of `params` (parameters of `graph`, which must outlive the optimizer).
  Optimizer(Graph& graph, std::vector<Var> params);
  /// The same with per-group learning-rate scales and weight decay; params() lists the groups'
  /// parameters in order. A parameter may belong to one group only.
  Optimizer(Graph& graph, std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update with learning rate `lr`; grads[k] is the gradient of params[k] (same shape and
  /// dtype). With clip_norm set, the gradients are first scaled so that their global L2 norm is at
  /// most clip_norm (PyTorch's clip_grad_norm_); the norm is summed in graph order, so grouping
  /// changes no bit of it.
  StepInfo step(std::span<const TensorRef> grads, double lr);

  const std::vector<Var>& params() const { return params_; }
  /// The groups as given (params() in one group when constructed from a list of parameters).
  const std::vector<ParamGroup>& groups() const { return groups_; }
  std::int64_t steps() const { return steps_; }
  /// For resuming from a checkpoint: the number of steps taken (Adam's bias correction uses it).
  void set_steps(std::int64_t steps) { steps_ = steps; }

  /// One tensor of per-parameter state: `slot` ("exp_avg", "momentum_buffer", ...) of params()[param].
  struct StateTensor {
    std::string slot;
    std::size_t param;
    Tensor* value;
  };
  /// The optimizer's kind ("SGD", "Adam") and its state, for checkpoints.
  virtual std::string_view kind() const = 0;
  virtual std::vector<StateTensor> state() = 0;

  std::optional<double> clip_norm;

 protected:
  /// Updates param in place from grad * grad_scale; `slot` indexes params() for per-parameter state.
  virtual void update(std::size_t slot, std::span<float> param, std::span<const float> grad, float grad_scale,
                      double lr) = 0;
  virtual void update(std::size_t slot, std::span<double> param, std::span<const double> grad, double grad_scale,
                      double lr) = 0;
  /// A zero tensor shaped like params()[slot], for per-parameter state.
  Tensor zeros_like_param(std::size_t slot) const;
  /// The weight decay of params()[slot]: its group's, else `fallback` (the optimizer's).
  double weight_decay(std::size_t slot, double fallback) const {
    return groups_[group_of_[slot]].weight_decay.value_or(fallback);
  }

 private:
  Graph* graph_;
  std::vector<ParamGroup> groups_;
  std::vector<Var> params_;
  std::vector<std::size_t> group_of_;  // params_[k] belongs to groups_[group_of_[k]]
  std::vector<std::size_t> graph_order_;  // indices of params_ by node id
  std::vector<TensorRef> ordered_grads_;  // the gradients in graph_order_, for clipping
  std::int64_t steps_ = 0;
};

struct SGDOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
  bool nesterov = false;
};

/// Negative momentum or weight decay, and Nesterov momentum without momentum or with dampening, are
/// a ValueError (torch.optim.SGD refuses the same).
void check_options(const SGDOptions& options);

/// Stochastic gradient descent with momentum, as torch.optim.SGD.
class SGD final : public Optimizer {
 public:
  SGD(Graph& graph, std::vector<Var> params, SGDOptions options = {});
  SGD(Graph& graph, std::vector<ParamGroup> groups, SGDOptions options = {});
  std::string_view kind() const override { return "SGD"; }
  std::vector<StateTensor> state() override;

 private:
  void update(std::size_t slot, std::span<float> p, std::span<const float> g, float s, double lr) override;
  void update(std::size_t slot, std::span<double> p, std::span<const double> g, double s, double lr) override;
  template <class T>
  void apply(std::size_t slot, std::span<T> p, std::span<const T> g, T s, double lr);
  SGDOptions options_;
  std::vector<Tensor> momentum_;
};

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  /// false: Adam's L2 penalty added to the gradient (torch.optim.Adam);
  /// true: decoupled decay p -= lr * weight_decay * p (torch.optim.AdamW).
  bool decoupled_weight_decay = false;
};

/// "AdamW" with decoupled weight decay, else "Adam": the kind checkpoints record.
inline std::string_view adam_kind(const AdamOptions& options) {
  return options.decoupled_weight_decay ? "AdamW" : "Adam";
}

/// Adam and AdamW with bias correction, as torch.optim.Adam / AdamW.
class Adam final : public Optimizer {
 public:
  Adam(Graph& graph, std::vector<Var> params, AdamOptions options = {});
  Adam(Graph& graph, std::vector<ParamGroup> groups, AdamOptions options = {});
  std::string_view kind() const override { return adam_kind(options_); }
  std::vector<StateTensor> state() override;

 private:
  void update(std::size_t slot, std::span<float> p, std::span<const float> g, float s, double lr) override;
  void update(std::size_t slot, std::span<double> p, std::span<const double> g, double s, double lr) override;
  template <class T>
  void apply(std::size_t slot, std::span<T> p, std::span<const T> g, T s, double lr);
  AdamOptions options_;
  std::vector<Tensor> first_moment_, second_moment_;
};

/// AdamW: Adam with decoupled weight decay (default 0.01, as PyTorch).
inline AdamOptions adamw(double weight_decay = 0.01) {
  AdamOptions o;
  o.weight_decay = weight_decay;
  o.decoupled_weight_decay = true;
  return o;
}

/// An optimizer factory for Trainer: AdamW with `weight_decay` on the parameters decayed_by_default
/// (none on the rest: weight_decay_groups) and, when given, global-norm clipping.
inline auto adamw_factory(double weight_decay = 0.01, std::optional<double> clip_norm = 1.0) {
  return [=](Graph& graph, std::vector<Var> params) -> std::unique_ptr<Optimizer> {
    auto adam = std::make_unique<Adam>(graph, weight_decay_groups(params), adamw(weight_decay));
    adam->clip_norm = clip_norm;
    return adam;
  };
}

/// The global L2 norm of a set of gradients (accumulated in double).
double global_norm(std::span<const TensorRef> grads);

/// Global-norm clipping as Optimizer::step applies it: without clip_norm, nothing (scale 1, norm not
/// taken); with it, the norm and the factor that brings it down to clip_norm.
StepInfo clipping(std::span<const TensorRef> grads, std::optional<double> clip_norm);

/// One Adam/AdamW update in place, PyTorch's arithmetic: the gradient is g * grad_scale, the
/// moments are updated in place, `step` counts from 1. The kernel of Adam::step, shared with
/// generated models so that both update bit for bit alike.
template <class T>
void adam_update(std::span<T> p, std::span<const T> g, T* first_moment, T* second_moment, T grad_scale, double lr,
                 std::int64_t step, const AdamOptions& options);

/// One SGD update in place, torch.optim.SGD's arithmetic: the gradient is g * grad_scale plus
/// options.weight_decay * p; with a momentum buffer (momentum > 0) it is the buffer's new value, which
/// `step` 1 (counted from 1) initialises. The kernel of SGD::step, shared with generated models.
template <class T>
void sgd_update(std::span<T> p, std::span<const T> g, T* momentum_buffer, T grad_scale, double lr, std::int64_t step,
                const SGDOptions& options);

/// Which optimizer, with its options, as one value: what a generated model's train_step() applies
/// (AdamOptions covers Adam and, with decoupled weight decay, AdamW).
using OptimizerOptions = std::variant<SGDOptions, AdamOptions>;

/// "SGD", "Adam" or "AdamW": the kind checkpoints record.
inline std::string_view optimizer_kind(const OptimizerOptions& options) {
  return std::holds_alternative<SGDOptions>(options) ? std::string_view("SGD") : adam_kind(std::get<AdamOptions>(options));
}

// ---- learning-rate schedules: step (counted from 0) -> learning rate ----

/// Linear warmup from 0 to peak over `warmup` steps, then cosine decay to min_lr at `total`.
struct WarmupCosine {
  double peak_lr = 1e-3;
  std::int64_t warmup = 0;
  std::int64_t total = 1;
  double min_lr = 0.0;
  double operator()(std::int64_t step) const;
};

/// Linear warmup to peak over `warmup` steps, then peak * sqrt(warmup / step) (the original
/// Transformer's schedule, with the peak given directly).
struct WarmupInverseSqrt {
  double peak_lr = 1e-3;
  std::int64_t warmup = 1;
  double operator()(std::int64_t step) const;
};

}  // namespace xg::optim
