#include "xgrad/train.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>
#include <unistd.h>

#include "runtime/kernel_environment.hpp"
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
std::vector<Var> with_grads(Graph& graph, Var objective, const std::vector<Var>& params, std::vector<Var> extra,
                            std::vector<Var>& grads) {
  grads = grad(graph, objective, params);
  std::vector<Var> outputs{objective};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  outputs.insert(outputs.end(), extra.begin(), extra.end());
  return outputs;
}
}  // namespace

Trainer::Trainer(Graph& graph, Var objective, std::vector<Var> params, std::vector<Var> extra_outputs)
    : graph_(&graph), objective_(objective), program_(compile(graph, with_grads(graph, objective, params, std::move(extra_outputs), grads_))) {
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

double Trainer::step(std::span<const Feed> feeds, double lr) {
  // The optimizer's update too: Adam's second moments are where subnormal values appear first.
  const KernelEnvironment environment(program_.flush_denormals());
  program_.run(feeds);
  if (grad_views_.empty()) {
    for (std::size_t k : grad_of_) grad_views_.push_back(program_.view(grads_[k]));
  }
  const TensorRef objective = program_.view(objective_);
  const double loss = visit_float(objective.dtype, [&]<class T>() { return static_cast<double>(*static_cast<const T*>(objective.data)); });
  last_step_ = optimizer_->step(grad_views_, lr);
  return loss;
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
