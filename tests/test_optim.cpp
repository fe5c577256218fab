// Optimizer updates against torch.optim (tests/golden/core.txt, optim_groups.txt), parameter groups
// and the default weight-decay grouping, schedules against hand-derived values, and the Trainer's
// gradient accumulation against one batch.
#include <doctest/doctest.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <map>
#include <numbers>
#include <set>

#include <unistd.h>

#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "golden.hpp"
#include "graph/registry.hpp"

using namespace xg;

namespace {

const testing::Golden& core() {
  static const testing::Golden golden("core.txt");
  return golden;
}

/// Three steps of `Opt` on the golden parameter with the golden gradients, in dtype T.
template <class T, class Make>
xt::xarray<double> three_steps(Make make, double lr) {
  Graph g(0, dtype_of<T>());
  const Var p = g.param("p", {6}, Init::zeros());
  g.value(p) = core()["optim.param"].cast(dtype_of<T>());
  auto opt = make(g, std::vector<Var>{p});
  for (int k = 0; k < 3; ++k) {
    const Tensor grad = core()[fmt::format("optim.grad{}", k)].cast(dtype_of<T>());
    const std::vector<TensorRef> grads{TensorRef(grad)};
    opt->step(grads, lr);
  }
  return g.value(p).cast(DType::f64).as<double>();
}

double max_error(const xt::xarray<double>& a, const std::string& golden) {
  return xt::amax(xt::abs(a - core().f64(golden)))();
}

}  // namespace

TEST_CASE_TEMPLATE("SGD, Adam and AdamW match torch.optim over three steps", T, double, float) {
  const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  auto sgd = [](optim::SGDOptions o) {
    return [o](Graph& g, std::vector<Var> p) { return std::make_unique<optim::SGD>(g, std::move(p), o); };
  };
  auto adam = [](optim::AdamOptions o) {
    return [o](Graph& g, std::vector<Var> p) { return std::make_unique<optim::Adam>(g, std::move(p), o); };
  };
  CHECK(max_error(three_steps<T>(sgd({0.9, 0.1, 0.01, false}), 0.1), "optim.sgd_momentum") < tol);
  CHECK(max_error(three_steps<T>(sgd({0.9, 0.0, 0.0, true}), 0.1), "optim.sgd_nesterov") < tol);
  CHECK(max_error(three_steps<T>(adam({0.8, 0.99, 1e-6, 0.1, false}), 0.01), "optim.adam") < tol);
  optim::AdamOptions w = optim::adamw(0.1);
  w.beta1 = 0.8;
  w.beta2 = 0.99;
  w.eps = 1e-6;
  CHECK(max_error(three_steps<T>(adam(w), 0.01), "optim.adamw") < tol);
}

TEST_CASE("global-norm clipping matches torch.nn.utils.clip_grad_norm_") {
  Graph g(0, DType::f64);
  const Var p = g.param("p", {6}, Init::zeros());
  g.value(p) = core()["optim.param"];
  optim::SGD sgd(g, {p});
  sgd.clip_norm = 0.5;
  const Tensor grad = core()["optim.grad0"];
  const std::vector<TensorRef> grads{TensorRef(grad)};
  const optim::StepInfo info = sgd.step(grads, 1.0);
  CHECK(info.grad_norm == doctest::Approx(core().f64("optim.clip.norm")()).epsilon(1e-12));
  CHECK(info.clip_scale < 1.0);
  CHECK(max_error(g.value(p).as<double>(), "optim.clip.sgd") < 1e-12);
}

TEST_CASE("an optimizer refuses gradients of the wrong shape and non-parameters") {
  Graph g(0, DType::f64);
  const Var p = g.param("p", {3}, Init::zeros());
  const Var x = g.input("x", {3});
  CHECK_THROWS_AS(optim::SGD(g, {x}), ValueError);
  optim::Adam adam(g, {p});
  const Tensor wrong(xt::xarray<double>{1.0, 2.0});
  const std::vector<TensorRef> grads{TensorRef(wrong)};
  CHECK_THROWS_WITH_AS(adam.step(grads, 0.1), doctest::Contains("'p'"), ShapeError);
  CHECK_THROWS_AS(optim::Adam(g, {p}, {1.5, 0.999, 1e-8, 0.0, false}), ValueError);
}

TEST_CASE("schedules: linear warmup, then cosine or inverse square root") {
  const optim::WarmupCosine cosine{1.0, 10, 110, 0.1};
  CHECK(cosine(0) == doctest::Approx(0.1));
  CHECK(cosine(9) == doctest::Approx(1.0));
  CHECK(cosine(10) == doctest::Approx(1.0));
  CHECK(cosine(60) == doctest::Approx(0.1 + 0.45 * (1.0 + std::cos(std::numbers::pi * 0.5))));
  CHECK(cosine(110) == doctest::Approx(0.1));
  CHECK(cosine(500) == doctest::Approx(0.1));
  const optim::WarmupInverseSqrt inverse{2.0, 4};
  CHECK(inverse(1) == doctest::Approx(1.0));
  CHECK(inverse(3) == doctest::Approx(2.0));
  CHECK(inverse(15) == doctest::Approx(1.0));
}

TEST_CASE("pad_sequences pads after each sequence and refuses one that does not fit") {
  const std::vector<std::vector<std::int32_t>> seqs{{5, 6, 7}, {8}};
  const PaddedBatch b = pad_sequences(seqs, 4, 0);
  CHECK(b.tokens == xt::xarray<std::int32_t>{{5, 6, 7, 0}, {8, 0, 0, 0}});
  CHECK(b.lengths == xt::xarray<std::int32_t>{3, 1});
  CHECK_THROWS_WITH_AS(pad_sequences(seqs, 2, 0), doctest::Contains("sequence 0 has 3 tokens"), ValueError);
}

// ---- parameter groups ----

namespace {

const testing::Golden& groups_golden() {
  static const testing::Golden golden("optim_groups.txt");
  return golden;
}

/// Three steps over p (group 0: the optimizer's weight decay, lr as given) and q (group 1: lr * 0.5,
/// weight decay 0.3), the learning rate changing every step, as make_optim_group_fixtures.py runs them.
template <class T, class Make>
void check_two_groups(Make make, const std::string& name) {
  const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  const testing::Golden& golden = groups_golden();
  Graph g(0, dtype_of<T>());
  const Var p = g.param("p", {6}, Init::zeros());
  const Var q = g.param("q", {2, 3}, Init::zeros());
  g.value(p) = golden["groups.p0"].cast(dtype_of<T>());
  g.value(q) = golden["groups.q0"].cast(dtype_of<T>());
  // q's group first: the optimizer's order need not be the graph's.
  auto opt = make(g, std::vector<optim::ParamGroup>{{.params = {q}, .lr_scale = 0.5, .weight_decay = 0.3}, {.params = {p}}});
  CHECK(opt->params()[0].id() == q.id());
  const xt::xarray<double> lr = golden.f64("groups.lr");
  for (std::size_t k = 0; k < 3; ++k) {
    const Tensor gq = golden[fmt::format("groups.gq{}", k)].cast(dtype_of<T>());
    const Tensor gp = golden[fmt::format("groups.gp{}", k)].cast(dtype_of<T>());
    const std::vector<TensorRef> grads{TensorRef(gq), TensorRef(gp)};
    opt->step(grads, lr(k));
  }
  CHECK(xt::amax(xt::abs(g.value(p).cast(DType::f64).as<double>() - golden.f64(fmt::format("groups.{}.p", name))))() < tol);
  CHECK(xt::amax(xt::abs(g.value(q).cast(DType::f64).as<double>() - golden.f64(fmt::format("groups.{}.q", name))))() < tol);
}

}  // namespace

TEST_CASE_TEMPLATE("parameter groups: SGD with momentum and AdamW match torch.optim's param_groups over three steps", T,
                   double, float) {
  check_two_groups<T>(
      [](Graph& g, std::vector<optim::ParamGroup> groups) {
        return std::make_unique<optim::SGD>(g, std::move(groups), optim::SGDOptions{0.9, 0.1, 0.01, false});
      },
      "sgd_momentum");
  check_two_groups<T>(
      [](Graph& g, std::vector<optim::ParamGroup> groups) {
        optim::AdamOptions o = optim::adamw(0.1);
        o.beta1 = 0.8;
        o.beta2 = 0.99;
        o.eps = 1e-6;
        return std::make_unique<optim::Adam>(g, std::move(groups), o);
      },
      "adamw");
}

TEST_CASE("parameter groups refuse a parameter in two groups and negative scales or decay") {
  Graph g(0, DType::f64);
  const Var p = g.param("p", {3}, Init::zeros());
  const Var q = g.param("q", {3}, Init::zeros());
  using Groups = std::vector<optim::ParamGroup>;
  CHECK_THROWS_WITH_AS(optim::Adam(g, Groups{{.params = {p, q}}, {.params = {q}}}), doctest::Contains("'q' appears twice"),
                       ValueError);
  CHECK_THROWS_WITH_AS(optim::SGD(g, Groups{{.params = {p}, .lr_scale = -1.0}}), doctest::Contains("group 0"), ValueError);
  CHECK_THROWS_AS(optim::SGD(g, Groups{{.params = {p}}, {.params = {q}, .weight_decay = -0.1}}), ValueError);
  optim::Adam empty_group(g, Groups{{.params = {p, q}}, {}});
  CHECK(empty_group.params().size() == 2);
}

TEST_CASE("the default grouping decays matrices, not biases, norm gains or learned positions") {
  CHECK(optim::decayed_by_default("layers.0.linear1.weight", 2));
  CHECK(optim::decayed_by_default("post_norm.weight", 2));  // "post" is not "pos"
  CHECK_FALSE(optim::decayed_by_default("layers.0.linear1.bias", 1));
  CHECK_FALSE(optim::decayed_by_default("tok_embed_pos.weight", 2));
  CHECK_FALSE(optim::decayed_by_default("pos_embed", 2));
  CHECK_FALSE(optim::decayed_by_default("embeddings.position_embeddings.weight", 2));

  // A pre-LN decoder LM with learned positions and a separate output projection.
  const models::ModelRecipe recipe =
      models::parse_recipe("decoder_lm", "dtype=f64 vocab=7 d_model=8 heads=2 d_ff=16 layers=1 batch=2 seq=4 "
                                         "norm=pre positions=learned tied=0");
  Graph g(1, recipe.float_type);
  const models::BuiltModel built = models::build_model(g, recipe);
  const std::set<std::string> decayed{"tok_embed.weight",
                                      "layers.0.self_attn.q_proj.weight",
                                      "layers.0.self_attn.k_proj.weight",
                                      "layers.0.self_attn.v_proj.weight",
                                      "layers.0.self_attn.out_proj.weight",
                                      "layers.0.linear1.weight",
                                      "layers.0.linear2.weight",
                                      "lm_head.weight"};
  const std::set<std::string> kept{"tok_embed_pos.weight", "layers.0.norm1.weight", "layers.0.norm1.bias",
                                   "layers.0.norm2.weight", "layers.0.norm2.bias", "layers.norm.weight",
                                   "layers.norm.bias",      "layers.0.self_attn.q_proj.bias",
                                   "layers.0.self_attn.k_proj.bias", "layers.0.self_attn.v_proj.bias",
                                   "layers.0.self_attn.out_proj.bias", "layers.0.linear1.bias",
                                   "layers.0.linear2.bias"};
  std::set<std::string> all;
  for (Var p : g.params()) all.insert(p.node().name);
  std::set<std::string> expected = decayed;
  expected.insert(kept.begin(), kept.end());
  REQUIRE(all == expected);

  // adamw_factory groups them: one AdamW step with zero gradients only decays, p *= 1 - lr * wd.
  Trainer trainer(g, built.objective, optim::adamw_factory(0.1, std::nullopt));
  const std::vector<optim::ParamGroup>& groups = trainer.optimizer().groups();
  REQUIRE(groups.size() == 2);
  CHECK_FALSE(groups[0].weight_decay.has_value());
  CHECK(groups[1].weight_decay == 0.0);
  std::map<std::string, xt::xarray<double>> before;
  for (Var p : g.params()) before[p.node().name] = g.value(p).as<double>();
  std::vector<Tensor> zeros;
  for (Var p : trainer.optimizer().params()) zeros.push_back(Tensor::zeros(p.dtype(), p.shape()));
  const std::vector<TensorRef> grads(zeros.begin(), zeros.end());
  trainer.optimizer().step(grads, 0.5);
  for (Var p : g.params()) {
    const std::string& name = p.node().name;
    INFO(name);
    const double factor = decayed.contains(name) ? 1.0 - 0.5 * 0.1 : 1.0;
    CHECK(xt::amax(xt::abs(g.value(p).as<double>() - before[name] * factor))() < 1e-15);
  }
}

TEST_CASE("a checkpoint of a grouped optimizer loads into one without groups: state is per parameter") {
  Graph grouped_graph(3, DType::f64), plain_graph(3, DType::f64);  // graphs cannot be moved: built in place
  for (Graph* g : {&grouped_graph, &plain_graph}) {
    g->param("a", {2, 2}, Init::normal(0.0, 1.0));
    g->param("b", {3}, Init::normal(0.0, 1.0));
  }
  const Var a = grouped_graph.find("a"), b = grouped_graph.find("b");
  optim::Adam grouped(grouped_graph, std::vector<optim::ParamGroup>{{.params = {b}}, {.params = {a}}}, optim::adamw(0.1));
  optim::Adam plain(plain_graph, plain_graph.params(), optim::adamw(0.1));
  const Tensor ga(xt::xarray<double>{{0.5, -1.0}, {2.0, 0.25}}), gb(xt::xarray<double>{1.0, -2.0, 3.0});
  const std::vector<TensorRef> grouped_grads{TensorRef(gb), TensorRef(ga)}, plain_grads{TensorRef(ga), TensorRef(gb)};
  grouped.step(grouped_grads, 0.1);
  grouped.step(grouped_grads, 0.1);
  const std::string path =
      (std::filesystem::temp_directory_path() / fmt::format("xgrad-groups-{}.safetensors", ::getpid())).string();
  save_checkpoint(path, grouped_graph, {&grouped, 0, {}});
  load_checkpoint(path, plain_graph, &plain);
  std::filesystem::remove(path);
  CHECK(plain.steps() == 2);
  grouped.step(grouped_grads, 0.1);
  plain.step(plain_grads, 0.1);
  CHECK(grouped_graph.value(a).as<double>() == plain_graph.value(plain_graph.find("a")).as<double>());
  CHECK(grouped_graph.value(b).as<double>() == plain_graph.value(plain_graph.find("b")).as<double>());
}

// ---- gradient accumulation ----

namespace {

/// A decoder LM in f64 without dropout, from a recipe of batch `batch`, trained with plain SGD (lr 1:
/// the update is minus the gradient) clipped at 0.5, the objective weighted by its token count or not.
struct AccumulatingLM {
  models::ModelRecipe recipe;
  Graph g;
  models::BuiltModel built;
  Trainer trainer;

  AccumulatingLM(std::int64_t batch, bool weighted)
      : recipe(models::parse_recipe("decoder_lm", fmt::format("dtype=f64 vocab=11 d_model=16 heads=2 d_ff=32 layers=2 "
                                                              "batch={} seq=8 dropout=0 positions=learned", batch))),
        g(9, recipe.float_type),
        built(models::build_model(g, recipe)),
        trainer(g, built.objective,
                [](Graph& graph, std::vector<Var> params) {
                  auto sgd = std::make_unique<optim::SGD>(graph, optim::weight_decay_groups(params),
                                                          optim::SGDOptions{.weight_decay = 0.01});
                  sgd->clip_norm = 0.5;
                  return sgd;
                },
                {.weight = weighted ? built.weight : Var()}) {}

  /// Feeds of sequences [first, first + count) of `batch`.
  std::vector<Feed> feeds(const PaddedBatch& tokens, const PaddedBatch& labels, std::size_t first, std::size_t count) {
    held.emplace_back(xt::view(tokens.tokens, xt::range(first, first + count)));
    held.emplace_back(xt::view(tokens.lengths, xt::range(first, first + count)));
    held.emplace_back(xt::view(labels.tokens, xt::range(first, first + count)));
    return {{g.find("tokens"), held[held.size() - 3]},
            {g.find("lengths"), held[held.size() - 2]},
            {g.find("labels"), held.back()}};
  }
  std::deque<xt::xarray<std::int32_t>> held;  // what the feeds view

  std::map<std::string, xt::xarray<double>> values() {
    std::map<std::string, xt::xarray<double>> out;
    for (Var p : g.params()) out[p.node().name] = g.value(p).as<double>();
    return out;
  }
};

double max_difference(const std::map<std::string, xt::xarray<double>>& a, const std::map<std::string, xt::xarray<double>>& b) {
  double worst = 0.0;
  for (const auto& [name, value] : a) worst = std::max(worst, xt::amax(xt::abs(value - b.at(name)))());
  return worst;
}

}  // namespace

TEST_CASE("gradient accumulation: two micro-batches of 2 step as one batch of 4, tokens weighted, not a mean of means") {
  // Four sequences of different lengths: 10 valid tokens in the first pair, 5 in the second.
  const std::vector<std::vector<std::int32_t>> sources{{1, 2, 3, 4, 5, 6, 7, 8}, {3, 1}, {4, 4, 2}, {9, 10}};
  std::vector<std::vector<std::int32_t>> targets;
  for (const auto& s : sources) {
    targets.emplace_back();
    for (std::int32_t t : s) targets.back().push_back((t * 3 + 1) % 11);
  }
  const PaddedBatch tokens = pad_sequences(sources, 8, 0), labels = pad_sequences(targets, 8, 0);

  AccumulatingLM whole(4, true), micro(2, true), unweighted(2, false);
  REQUIRE(max_difference(whole.values(), micro.values()) == 0.0);  // the same seed draws the same parameters
  const auto before = whole.values();

  const double objective = whole.trainer.step(whole.feeds(tokens, labels, 0, 4), 1.0);
  const std::vector<Feed> first = micro.feeds(tokens, labels, 0, 2), second = micro.feeds(tokens, labels, 2, 2);
  const std::vector<std::span<const Feed>> micro_batches{first, second};
  const double accumulated = micro.trainer.step(micro_batches, 1.0);
  const std::vector<Feed> first_u = unweighted.feeds(tokens, labels, 0, 2), second_u = unweighted.feeds(tokens, labels, 2, 2);
  const std::vector<std::span<const Feed>> unweighted_batches{first_u, second_u};
  const double mean_of_means = unweighted.trainer.step(unweighted_batches, 1.0);

  CHECK(whole.trainer.last_step().clip_scale < 1.0);  // clipping applies to the accumulated gradient
  CHECK(std::abs(accumulated - objective) < 1e-12);
  CHECK(std::abs(micro.trainer.last_step().grad_norm - whole.trainer.last_step().grad_norm) < 1e-12);
  CHECK(max_difference(micro.values(), whole.values()) < 1e-12);
  // The mean of the two micro-batches' means weighs a token of the short pair twice as much.
  CHECK(std::abs(mean_of_means - objective) > 1e-3);
  CHECK(max_difference(unweighted.values(), whole.values()) > 1e-4);
  CHECK(max_difference(whole.values(), before) > 1e-2);

  // Steady state: the buffers are reused, and a second accumulated step still matches.
  const double objective2 = whole.trainer.step(whole.feeds(tokens, labels, 0, 4), 1.0);
  CHECK(std::abs(micro.trainer.step(micro_batches, 1.0) - objective2) < 1e-12);
  CHECK(max_difference(micro.values(), whole.values()) < 1e-12);
}

TEST_CASE("gradient accumulation: a micro-batch without valid tokens counts for nothing; all without, no update") {
  const std::vector<std::vector<std::int32_t>> sources{{1, 2, 3}, {4, 5}}, empty{{}, {}};
  const PaddedBatch tokens = pad_sequences(sources, 8, 0), none = pad_sequences(empty, 8, 0);
  AccumulatingLM alone(2, true), with_empty(2, true);
  const double objective = alone.trainer.step(alone.feeds(tokens, tokens, 0, 2), 1.0);
  const std::vector<Feed> valid = with_empty.feeds(tokens, tokens, 0, 2), nothing = with_empty.feeds(none, none, 0, 2);
  const std::vector<std::span<const Feed>> batches{nothing, valid, nothing};
  CHECK(std::abs(with_empty.trainer.step(batches, 1.0) - objective) < 1e-12);
  CHECK(max_difference(with_empty.values(), alone.values()) < 1e-12);

  const auto before = with_empty.values();
  const std::vector<std::span<const Feed>> only_empty{nothing, nothing};
  CHECK_THROWS_WITH_AS(with_empty.trainer.step(only_empty, 1.0), doctest::Contains("weight 0"), ValueError);
  CHECK(max_difference(with_empty.values(), before) == 0.0);
  CHECK_THROWS_AS(with_empty.trainer.step(std::span<const std::span<const Feed>>(), 1.0), ValueError);
}
