#pragma once
// Losses and masked reductions, built from ops so that they differentiate like any other graph.
#include <cstdint>
#include <optional>

#include "xgrad/graph.hpp"

namespace xg {

enum class Reduction : std::uint8_t {
  none,            // the per-position loss, logits' shape without the class axis
  sum,             // sum over positions
  mean,            // mean over positions whose label is not ignore_index (PyTorch's mean)
  mean_over_mask,  // sum(loss * mask) / sum(mask), mask given in the options
};

struct CrossEntropyOptions {
  int class_axis = 1;  // PyTorch's convention; transformer code often uses -1
  Reduction reduction = Reduction::mean;
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  std::optional<Var> mask;  // for Reduction::mean_over_mask: the loss shape, 1 = counts
};

/// Cross-entropy of unnormalized logits against integer labels (PyTorch's F.cross_entropy):
/// labels have logits' shape without the class axis. Ignored positions give 0 and are left out of
/// the mean; label smoothing mixes the target with the uniform distribution.
Var cross_entropy(Var logits, Var labels, const CrossEntropyOptions& options = {});

/// sum(x * mask) / sum(mask): the mean over the positions the mask keeps. The gradient flows to both.
Var masked_mean(Var x, Var mask);

}  // namespace xg
