#pragma once
// A small training-loop kit: padded batches of variable-length sequences, a Trainer that owns the
// training Program and the optimizer, and a live progress line.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "xgrad/compile.hpp"
#include "xgrad/optim.hpp"

namespace xg {

/// Sequences padded to one length: tokens (B, seq_len) with `pad` after each sequence's end, and
/// lengths (B).
struct PaddedBatch {
  xt::xarray<std::int32_t> tokens;
  xt::xarray<std::int32_t> lengths;
};

/// Pads (never truncates: a sequence longer than seq_len is a ValueError naming it).
PaddedBatch pad_sequences(std::span<const std::vector<std::int32_t>> sequences, std::int64_t seq_len,
                          std::int32_t pad);

/// What a Trainer computes besides the objective and its gradients.
struct TrainerOptions {
  /// A scalar of the graph saying how many items the objective is a mean over, e.g. sum(mask) for
  /// sum(loss * mask) / sum(mask): step() over micro-batches weighs each one's objective and
  /// gradients by it, so that they add up to the objective of the whole batch. Unset: each
  /// micro-batch weighs 1 (right when every micro-batch's objective is a mean over as many items).
  Var weight{};
  /// More outputs for every run to compute, readable through program() after a step.
  std::vector<Var> extra_outputs{};
  /// How the training Program is compiled (a memory budget, threads, passes).
  CompileOptions compile{};
};

/// Compiles the objective with the gradients of every trainable parameter, runs it in training mode
/// and updates the parameters: one call per step.
class Trainer {
 public:
  /// `make_optimizer` receives the graph and its parameters, e.g.
  /// `[](Graph& g, std::vector<Var> p) { return std::make_unique<optim::Adam>(g, p, optim::adamw()); }`;
  /// the optimizer may order them as it likes (in groups) or leave some out (frozen).
  template <class MakeOptimizer>
  Trainer(Graph& graph, Var objective, MakeOptimizer&& make_optimizer, TrainerOptions options = {})
      : Trainer(graph, objective, std::move(options)) {
    attach(make_optimizer(graph, graph.params()));
  }

  /// Runs forward and backward on `feeds`, then one optimizer step with learning rate lr.
  /// Returns the objective's value before the update.
  double step(std::span<const Feed> feeds, double lr);
  double step(std::initializer_list<Feed> feeds, double lr) {
    return step(std::span<const Feed>(feeds.begin(), feeds.size()), lr);
  }
  /// Gradient accumulation: runs forward and backward on each micro-batch in turn, sums
  /// weight_i * gradient_i (weight_i: TrainerOptions::weight's value on micro-batch i) into buffers
  /// allocated once, divides by the total weight and takes one optimizer step with learning rate lr
  /// (clipping, if any, sees the accumulated gradient). With the weight sum(mask), that is the
  /// gradient of sum(loss * mask) / sum(mask) over all the micro-batches together, not a mean of
  /// their means. Returns the objective so weighted. A micro-batch of weight 0 (no valid item)
  /// counts for nothing; weights must be finite and >= 0 and not all 0 (else ValueError, no update).
  /// Each micro-batch is a run (dropout streams advance as for a step each). One micro-batch: step(feeds, lr).
  double step(std::span<const std::span<const Feed>> micro_batches, double lr);

  /// Saves the parameters, the optimizer's state and the run counter, plus `metadata` (a data RNG's
  /// state, the epoch, ...), atomically: resuming from it continues bit for bit.
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {}) const;
  /// Restores what save() wrote into this trainer's graph and optimizer; returns the metadata.
  std::map<std::string, std::string> load(const std::string& path);

  Program& program() { return program_; }
  /// The gradient of each parameter (in graph order), readable through program() after a step
  /// (after an accumulating step: the last micro-batch's).
  const std::vector<Var>& gradients() const { return grads_; }
  optim::Optimizer& optimizer() { return *optimizer_; }
  const optim::StepInfo& last_step() const { return last_step_; }

 private:
  Trainer(Graph& graph, Var objective, TrainerOptions options);
  void attach(std::unique_ptr<optim::Optimizer> optimizer);
  /// Runs the program on `feeds` (the caller holds the kernel environment); returns the objective.
  double run(std::span<const Feed> feeds);
  /// Adds weight * (gradient of the last run) to accumulated_, or sets it with `first`.
  void accumulate(double weight, bool first);

  Graph* graph_;
  Var objective_;
  Var weight_;
  std::vector<Var> grads_;               // graph order
  std::vector<std::size_t> grad_of_;     // optimizer->params()[k]'s gradient is grads_[grad_of_[k]]
  std::vector<TensorRef> grad_views_;    // optimizer order
  std::vector<Tensor> accumulated_;      // optimizer order, allocated by the first accumulating step
  std::vector<TensorRef> accumulated_views_;
  Program program_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  optim::StepInfo last_step_;
};

/// One line, rewritten in place on a terminal (a new line every `log_every` steps otherwise):
/// step/total, loss (a running mean), tokens/s and ETA.
class ProgressLine {
 public:
  explicit ProgressLine(std::int64_t total_steps, std::string label = "train", std::FILE* out = stderr);
  /// Records step `step` (0-based) with its loss and the number of tokens it processed.
  void update(std::int64_t step, double loss, std::int64_t tokens);
  /// Ends the line.
  void finish();
  double running_loss() const { return running_loss_; }

 private:
  std::int64_t total_;
  std::string label_;
  std::FILE* out_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_print_;
  std::int64_t tokens_ = 0;
  double running_loss_ = 0.0;
  bool has_loss_ = false;
  bool finished_ = false;
};

}  // namespace xg
