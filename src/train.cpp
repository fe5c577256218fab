#include "xgrad/train.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>
#include <unistd.h>

#include "xgrad/kernel_environment.hpp"
#include "util/checked.hpp"
#include "xgrad/autodiff.hpp"
#include "xgrad/checkpoint.hpp"

namespace xg {

PaddedBatch pad_sequences(std::span<const std::vector<std::int32_t>> sequences, std::int64_t seq_len,
                          std::int32_t pad) {
  PaddedBatch batch;
  if (seq_len < 0) throw ValueError(fmt::format("pad_sequences: negative sequence length {}", seq_len));
  checked::size(std::array{static_cast<std::int64_t>(sequences.size()), seq_len}, sizeof(std::int32_t), "pad_sequences");
  const std::size_t count = sequences.size(), width = static_cast<std::size_t>(seq_len);
  batch.tokens = xt::xarray<std::int32_t>::from_shape({count, width});
  batch.tokens.fill(pad);
  batch.lengths = xt::xarray<std::int32_t>::from_shape({count});
  for (std::size_t b = 0; b < count; ++b) {
    const auto& s = sequences[b];
    if (s.size() > width) {
      throw ValueError(fmt::format("pad_sequences: sequence {} has {} tokens, more than the {} positions", b, s.size(),
                                   seq_len));
    }
    std::copy(s.begin(), s.end(), &batch.tokens(b, 0));
    batch.lengths(b) = static_cast<std::int32_t>(s.size());
  }
  return batch;
}

namespace {

std::vector<Var> with_grads(Graph& graph, Var objective, const TrainerOptions& options, std::vector<Var>& grads) {
  if (options.weight.valid() &&
      (&options.weight.graph() != &graph || options.weight.rank() != 0 || !is_float(options.weight.dtype()))) {
    throw ValueError(
        fmt::format("Trainer: the weight {} must be a float scalar of the objective's graph", options.weight.describe()));
  }
  grads = grad(graph, objective, graph.params());
  std::vector<Var> outputs{objective};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  outputs.insert(outputs.end(), options.extra_outputs.begin(), options.extra_outputs.end());
  if (options.weight.valid()) outputs.push_back(options.weight);
  return outputs;
}

double scalar_value(const TensorRef& t) {
  return visit_float(t.dtype, [&]<class T>() { return static_cast<double>(*static_cast<const T*>(t.data)); });
}

}  // namespace

Trainer::Trainer(Graph& graph, Var objective, TrainerOptions options)
    : graph_(&graph),
      objective_(objective),
      weight_(options.weight),
      program_(compile(graph, with_grads(graph, objective, options, grads_), options.compile)) {
  program_.set_training(true);
}

void Trainer::attach(std::unique_ptr<optim::Optimizer> optimizer) {
  optimizer_ = std::move(optimizer);
  const std::vector<Var> params = graph_->params();
  for (Var p : optimizer_->params()) {
    const auto at = std::find_if(params.begin(), params.end(), [&](Var q) { return q.id() == p.id(); });
    if (at == params.end()) {
      throw ValueError(fmt::format("Trainer: the optimizer updates {}, not a parameter of the graph", p.describe()));
    }
    grad_of_.push_back(static_cast<std::size_t>(at - params.begin()));
  }
}

double Trainer::run(std::span<const Feed> feeds) {
  program_.run(feeds);
  if (grad_views_.empty()) {
    for (std::size_t k : grad_of_) grad_views_.push_back(program_.view(grads_[k]));
  }
  return scalar_value(program_.view(objective_));
}

double Trainer::step(std::span<const Feed> feeds, double lr) {
  // The optimizer's update too: Adam's second moments are where subnormal values appear first.
  const KernelEnvironment environment(program_.flush_denormals());
  const double loss = run(feeds);
  last_step_ = optimizer_->step(grad_views_, lr);
  return loss;
}

void Trainer::accumulate(double weight, bool first) {
  if (accumulated_.empty()) {  // the first accumulating step allocates, the next ones reuse
    for (Var p : optimizer_->params()) accumulated_.push_back(Tensor::zeros(p.dtype(), p.shape()));
    accumulated_views_.assign(accumulated_.begin(), accumulated_.end());
  }
  for (std::size_t k = 0; k < grad_views_.size(); ++k) {
    const auto n = static_cast<std::size_t>(grad_views_[k].numel());
    visit_float(grad_views_[k].dtype, [&]<class T>() {
      const T* g = static_cast<const T*>(grad_views_[k].data);
      T* sum = static_cast<T*>(accumulated_[k].data());
      const auto w = static_cast<T>(weight);
      if (first) {
        for (std::size_t i = 0; i < n; ++i) sum[i] = w * g[i];
      } else {
        for (std::size_t i = 0; i < n; ++i) sum[i] += w * g[i];
      }
    });
  }
}

double Trainer::step(std::span<const std::span<const Feed>> micro_batches, double lr) {
  if (micro_batches.empty()) throw ValueError("Trainer::step: no micro-batches");
  if (micro_batches.size() == 1) return step(micro_batches.front(), lr);
  const KernelEnvironment environment(program_.flush_denormals());
  double total_weight = 0.0, weighted_objective = 0.0;
  for (std::size_t i = 0; i < micro_batches.size(); ++i) {
    const double objective = run(micro_batches[i]);
    const double weight = weight_.valid() ? scalar_value(program_.view(weight_)) : 1.0;
    if (!(weight >= 0.0) || !std::isfinite(weight)) {
      throw ValueError(fmt::format("Trainer::step: micro-batch {} has weight {} ({}); weights must be finite and >= 0", i,
                                   weight, weight_.describe()));
    }
    if (weight == 0.0) continue;  // no item: its objective (0/0) and gradients are no part of the whole batch's
    accumulate(weight, total_weight == 0.0);
    total_weight += weight;
    weighted_objective += weight * objective;
  }
  if (total_weight == 0.0) {
    throw ValueError(fmt::format("Trainer::step: all {} micro-batches have weight 0 ({}); no update", micro_batches.size(),
                                 weight_.describe()));
  }
  for (std::size_t k = 0; k < accumulated_.size(); ++k) {
    visit_float(accumulated_[k].dtype(), [&]<class T>() {
      T* sum = static_cast<T*>(accumulated_[k].data());
      const auto n = static_cast<std::size_t>(accumulated_[k].numel());
      const auto total = static_cast<T>(total_weight);
      for (std::size_t i = 0; i < n; ++i) sum[i] /= total;
    });
  }
  last_step_ = optimizer_->step(accumulated_views_, lr);
  return weighted_objective / total_weight;
}

void Trainer::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  save_checkpoint(path, *graph_, {optimizer_.get(), program_.run_index(), metadata});
}

std::map<std::string, std::string> Trainer::load(const std::string& path) {
  LoadedState state = load_checkpoint(path, *graph_, optimizer_.get());
  program_.set_run_index(state.run_index);
  return std::move(state.metadata);
}

ProgressLine::ProgressLine(std::int64_t total_steps, std::string label, std::FILE* out)
    : total_(total_steps),
      label_(std::move(label)),
      out_(out),
      terminal_(isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

void ProgressLine::update(std::int64_t step, double loss, std::int64_t tokens) {
  tokens_ += tokens;
  running_loss_ = has_loss_ ? 0.95 * running_loss_ + 0.05 * loss : loss;
  has_loss_ = true;
  const auto now = std::chrono::steady_clock::now();
  const bool last = step + 1 >= total_;
  // A terminal gets a live line ten times a second; a log gets one line per ~5% of the run.
  const std::int64_t log_every = std::max<std::int64_t>(1, total_ / 20);
  const bool due = terminal_ ? now - last_print_ >= std::chrono::milliseconds(100) : (step + 1) % log_every == 0;
  if (!due && !last) return;
  last_print_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double per_step = elapsed / static_cast<double>(step + 1);
  const double eta = per_step * static_cast<double>(total_ - step - 1);
  fmt::print(out_, "{}{} step {:>6}/{} | loss {:.4f} | {:>8.0f} tok/s | {:>5.1f}s elapsed | ETA {:>5.1f}s{}",
             terminal_ ? "\r" : "", label_, step + 1, total_, running_loss_, static_cast<double>(tokens_) / elapsed,
             elapsed, eta, terminal_ ? "\x1b[K" : "\n");
  std::fflush(out_);
}

void ProgressLine::finish() {
  if (finished_) return;
  finished_ = true;
  if (terminal_) fmt::print(out_, "\n");
}

}  // namespace xg
