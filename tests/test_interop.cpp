// Interop with PyTorch: tests/golden/torch_lm.safetensors is the state_dict of a small decoder-only
// LM that PyTorch initialised and wrote (golden/make_torch_checkpoint.py, with Debian's
// python3-torch). Loaded by name into xgrad's own decoder LM (graph/decoder_lm.cpp) with
// load_checkpoint, it must give the logits and the masked loss that PyTorch computed with the same
// weights (golden/torch_lm.txt), in f32. The suite needs no Python: both files are committed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <xgrad/checkpoint.hpp>
#include <xgrad/compile.hpp>
#include <xgrad/safetensors.hpp>

#include "golden.hpp"
#include "graph/decoder_lm.hpp"

using namespace xg;

namespace {

constexpr double kTolerance = 1e-4;  // |xgrad - PyTorch| <= kTolerance * max(1, |PyTorch|), both in f32
constexpr std::size_t kTensors = 37;  // 2 embeddings, 2 x 16 per layer, the final norm's 2, lm_head
const std::string kCheckpoint = XG_GOLDEN_DIR "/torch_lm.safetensors";

const testing::Golden& torch_run() {
  static const testing::Golden golden("torch_lm.txt");
  return golden;
}

/// The model of make_torch_checkpoint.py: vocab 11, d_model 16, 2 heads, d_ff 32, 2 pre-LN layers
/// with a final norm, GELU, learned positions (max_len 8), untied head; batch 2, sequence 6.
models::DecoderLMConfig torch_lm_config() {
  models::ModelConfig model;
  model.d_model = 16;
  model.heads = 2;
  model.d_ff = 32;
  model.max_len = 8;
  model.dropout = 0.1;  // inactive: Programs run in evaluation mode, as PyTorch's model.eval()
  model.norm = nn::NormStyle::pre;
  model.activation = nn::Activation::gelu;
  model.positions = models::Positions::learned;
  model.scale_embedding = true;
  return {model, /*vocab=*/11, /*layers=*/2, /*tied_output=*/false, /*batch=*/2, /*seq_len=*/6};
}

/// The worst elementwise |got - want| / max(1, |want|); infinite for NaN or another shape.
double worst_error(const Tensor& got_value, const std::string& record) {
  const xt::xarray<double> got = got_value.cast(DType::f64).as<double>();
  const xt::xarray<double> want = torch_run().f64(record);
  if (got.shape() != want.shape()) return std::numeric_limits<double>::infinity();
  double worst = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double error = std::abs(got.flat(i) - want.flat(i)) / std::max(1.0, std::abs(want.flat(i)));
    worst = std::isnan(error) ? std::numeric_limits<double>::infinity() : std::max(worst, error);
  }
  return worst;
}

}  // namespace

TEST_CASE("interop: the safetensors file PyTorch wrote is read with its metadata and every tensor") {
  const SafetensorsContent file = load_safetensors(kCheckpoint);
  CHECK(file.metadata.size() == 1);
  CHECK(file.metadata.at("format") == "pt");
  CHECK(file.tensors.size() == kTensors);

  // Exactly the parameters of xgrad's graph for that config, in f32 with the same shapes.
  Graph g(/*seed=*/123);
  models::decoder_lm(g, torch_lm_config());
  std::set<std::string> names;
  for (Var p : g.params()) {
    const std::string& name = p.node().name;
    names.insert(name);
    const auto it = file.tensors.find(name);
    REQUIRE_MESSAGE(it != file.tensors.end(), "parameter '", name, "' is not in PyTorch's state_dict");
    CHECK_MESSAGE(it->second.dtype() == DType::f32, name);
    CHECK_MESSAGE(it->second.shape() == p.shape(), name);
  }
  CHECK(names.size() == file.tensors.size());
}

TEST_CASE("interop: a PyTorch state_dict loaded into xgrad's decoder LM gives PyTorch's logits and loss") {
  Graph g(/*seed=*/123);  // xgrad's own initialisation, unlike PyTorch's
  const models::DecoderLM m = models::decoder_lm(g, torch_lm_config());
  Program program = compile(g, {m.logits, m.objective});
  const std::vector<Feed> feeds{{m.tokens, TensorRef(torch_run()["lm.tokens"])},
                                {m.lengths, TensorRef(torch_run()["lm.lengths"])},
                                {m.labels, TensorRef(torch_run()["lm.labels"])}};

  // With xgrad's own weights the outputs are far from PyTorch's: the load is what makes them equal.
  program.run(feeds);
  CHECK(worst_error(program.get(m.logits), "lm.logits") > 0.1);
  CHECK(worst_error(program.get(m.objective), "lm.objective") > 0.01);

  const LoadedState loaded = load_checkpoint(kCheckpoint, g);
  CHECK(loaded.metadata.at("format") == "pt");
  CHECK(loaded.run_index == 0);  // PyTorch writes no xgrad counters

  // Every parameter holds PyTorch's value bit for bit.
  const SafetensorsContent file = load_safetensors(kCheckpoint);
  for (Var p : g.params()) {
    CHECK_MESSAGE(g.value(p).as<float>() == file.tensors.at(p.node().name).as<float>(), p.node().name);
  }

  // The Program compiled before the load shares the graph's values, so it sees the new weights.
  program.run(feeds);
  const double logits_error = worst_error(program.get(m.logits), "lm.logits");
  const double objective_error = worst_error(program.get(m.objective), "lm.objective");
  CHECK(logits_error <= kTolerance);
  CHECK(objective_error <= kTolerance);
}
