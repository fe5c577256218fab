#pragma once
// A model of one of graph/'s families with its objective and every parameter gradient, and one
// batch of random feeds: what the thread and compiler-pass tests run and compare bit for bit.
#include <cstddef>
#include <memory>
#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "graph/registry.hpp"
#include "xgrad/xgrad.hpp"

namespace xg::testing {

/// One model of each family big enough that products are cut into pieces and elementwise ops split
/// across threads, small enough to compile and run in well under a second: what the compiler-pass
/// and memory-budget tests compare bit for bit.
inline constexpr std::string_view kSplitDecoder = "vocab=64 d_model=64 heads=4 d_ff=256 layers=2 batch=4 seq=64 dropout=0.1";
inline constexpr std::string_view kSplitEncoder =
    "vocab=64 classes=5 d_model=64 heads=4 d_ff=256 layers=2 batch=4 seq=64 dropout=0.1 activation=gelu";
inline constexpr std::string_view kSplitSeq2seq =
    "src_vocab=40 tgt_vocab=48 d_model=64 heads=4 d_ff=256 encoder_layers=1 decoder_layers=1 batch=4 src_len=48 "
    "tgt_len=40 dropout=0.1";

struct TrainedModel {
  models::ModelRecipe recipe;
  Graph graph;
  std::vector<Var> outputs;  // the objective, then the gradients
  std::mt19937 rng{3};
  std::unique_ptr<models::RandomInputs> inputs;
  std::span<const Feed> feeds;

  TrainedModel(std::string_view family, std::string_view config)
      : recipe(models::parse_recipe(family, config)), graph(7, recipe.float_type) {
    const models::BuiltModel built = models::build_model(graph, recipe);
    outputs.push_back(built.objective);
    for (Var g : grad(graph, built.objective, graph.params())) outputs.push_back(g);
    inputs = std::make_unique<models::RandomInputs>(recipe, graph, rng);
    feeds = inputs->feeds();
  }

  /// The raw bytes of every output after two training-mode runs (dropout on) with `pool` and the
  /// compiler passes `passes`.
  std::vector<std::vector<std::byte>> run(std::shared_ptr<ThreadPool> pool, CompilePasses passes = {}) {
    return run(CompileOptions{.pool = std::move(pool), .passes = passes});
  }
  std::vector<std::vector<std::byte>> run(const CompileOptions& options) {
    Program p = compile(graph, outputs, options);
    p.set_training(true);
    std::vector<std::vector<std::byte>> bytes;
    for (int r = 0; r < 2; ++r) {
      p.run(feeds);
      for (Var v : outputs) {
        const TensorRef t = p.view(v);
        const auto* data = static_cast<const std::byte*>(t.data);
        bytes.emplace_back(data, data + t.numel() * size_of(t.dtype));
      }
    }
    return bytes;
  }
};

}  // namespace xg::testing
