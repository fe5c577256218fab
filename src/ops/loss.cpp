// cross_entropy and masked_mean, composed of ops (log_softmax, pick, reductions) so that their
// gradients, and the loss mask's, come from the ops' rules.
#include "xgrad/loss.hpp"

#include "ops/builder_util.hpp"
#include "xgrad/ops.hpp"

namespace xg {

Var cross_entropy(Var logits, Var labels, const CrossEntropyOptions& options) {
  detail::same_graph("cross_entropy", {logits, labels});
  detail::require_float("cross_entropy", logits);
  detail::require_int("cross_entropy", labels);
  const int axis = normalize_axis(options.class_axis, logits.rank(), fmt::format("cross_entropy of {}", logits.describe()));
  std::vector<std::int64_t> dims = logits.shape().dims();
  dims.erase(dims.begin() + axis);
  if (labels.shape() != Shape(dims)) {
    throw ShapeError(fmt::format("cross_entropy: labels {} have shape {}, but logits {} of shape {} with class axis {} "
                                 "need labels of shape {}",
                                 labels.describe(), labels.shape(), logits.describe(), logits.shape(), axis, Shape(dims)));
  }
  if (!(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0)) {
    throw ValueError(fmt::format("cross_entropy: label_smoothing must be in [0, 1], got {}", options.label_smoothing));
  }
  const double classes = static_cast<double>(logits.shape()[axis]);
  const Var log_probs = log_softmax(logits, axis);
  const Var valid = cast(not_equal(labels, detail::scalar_like(labels, static_cast<double>(options.ignore_index))),
                         logits.dtype());
  Var loss = -pick(log_probs, labels, axis, options.ignore_index);
  if (options.label_smoothing > 0.0) {
    const double eps = options.label_smoothing;
    const Var uniform_target = -sum(log_probs, {axis}) * (1.0 / classes);
    loss = (1.0 - eps) * loss + eps * uniform_target * valid;
  }
  switch (options.reduction) {
    case Reduction::none: return loss;
    case Reduction::sum: return sum(loss);
    case Reduction::mean: return sum(loss) / sum(valid);
    case Reduction::mean_over_mask:
      if (!options.mask) throw ValueError("cross_entropy: Reduction::mean_over_mask needs options.mask");
      return masked_mean(loss, *options.mask);
  }
  throw ValueError("cross_entropy: unknown reduction");
}

Var masked_mean(Var x, Var mask) {
  detail::same_graph("masked_mean", {x, mask});
  detail::require_float("masked_mean", x);
  detail::require_same_dtype("masked_mean", x, mask);
  const Shape shape = detail::broadcast_shapes("masked_mean", x, mask);
  return sum(x * mask) / sum(broadcast_to(mask, shape));
}

}  // namespace xg
