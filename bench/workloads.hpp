#pragma once
// The benchmark workloads of bench/README.md, built as xgrad graphs. bench/torch_bench.py
// defines the same models in PyTorch.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

namespace xg::bench {

/// A workload: its graph, the objective, and a function that makes one batch of feeds.
struct Workload {
  std::string name;
  Graph graph{0};
  Var objective;
  std::vector<Var> forward_outputs;  // what an inference pass computes
  std::int64_t tokens_per_step = 0;
  /// Fills the feed arrays for one step (fixed seed: every step of a run sees the same batch).
  std::vector<Feed> feeds;
  std::vector<Tensor> feed_values;
};

/// W1 gpt-tiny: decoder-only LM, vocab 128, d_model 128, 4 heads, d_ff 512, 2 layers, batch 8,
/// seq 64, lengths uniform in 16..64.
void build_gpt_tiny(Workload& w);
/// W2 encoder-256: one encoder layer, d_model 256, 8 heads, d_ff 1024, batch 16, seq `seq` (128),
/// key padding with lengths in seq/4..seq, loss = mean of the output squared.
void build_encoder(Workload& w, std::int64_t batch = 16, std::int64_t seq = 128);
/// W3 seq2seq-small: 2 + 2 layers, d_model 128, 4 heads, d_ff 512, vocab 128, batch 8, source and
/// target length 48, lengths in 8..48, masked loss on the target.
void build_seq2seq_small(Workload& w);
/// W4 gpt2-124m: GPT-2 small's shapes and settings (vocab 50257, 1024 learned positions, 12 pre-LN
/// layers of width 768, 12 heads, d_ff 3072, tanh GELU, tied output embedding, weights N(0, 0.02)),
/// batch 4 of `seq` tokens, every sequence full length.
void build_gpt2(Workload& w, std::int64_t seq);

}  // namespace xg::bench
