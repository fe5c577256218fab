#include "workloads.hpp"

#include "graph/decoder_lm.hpp"
#include "graph/seq2seq.hpp"

namespace xg::bench {

namespace {

models::ModelConfig model(std::int64_t d_model, std::int64_t heads, std::int64_t d_ff, std::int64_t max_len) {
  models::ModelConfig c;
  c.d_model = d_model;
  c.heads = heads;
  c.d_ff = d_ff;
  c.max_len = max_len;
  c.dropout = 0.0;
  c.norm = nn::NormStyle::post;
  c.activation = nn::Activation::relu;
  c.positions = models::Positions::sinusoidal;
  c.scale_embedding = false;
  return c;
}

xt::xarray<std::int32_t> random_ints(std::mt19937_64& rng, std::vector<std::size_t> shape, int low, int high) {
  xt::xarray<std::int32_t> a = xt::xarray<std::int32_t>::from_shape(shape);
  std::uniform_int_distribution<int> d(low, high);
  for (auto& v : a) v = d(rng);
  return a;
}

void feed(Workload& w, Var v, Tensor value) {
  w.feed_values.push_back(std::move(value));
  w.feeds.push_back({v, TensorRef{}});
}

/// Points the feeds at their values once every value is in place (the vector no longer grows).
void bind_feeds(Workload& w) {
  for (std::size_t i = 0; i < w.feeds.size(); ++i) w.feeds[i].value = TensorRef(w.feed_values[i]);
}

}  // namespace

void build_gpt_tiny(Workload& w) {
  w.name = "W1 gpt-tiny";
  models::DecoderLMConfig c{model(128, 4, 512, 64), 128, 2, false, 8, 64};
  const models::DecoderLM m = models::decoder_lm(w.graph, c);
  w.objective = m.objective;
  w.forward_outputs = {m.objective};
  std::mt19937_64 rng(1);
  const auto lengths = random_ints(rng, {8}, 16, 64);
  feed(w, m.tokens, random_ints(rng, {8, 64}, 0, 127));
  feed(w, m.lengths, lengths);
  feed(w, m.labels, random_ints(rng, {8, 64}, 0, 127));
  bind_feeds(w);
  w.tokens_per_step = xt::sum(lengths)();
}

void build_encoder(Workload& w, std::int64_t batch, std::int64_t seq) {
  w.name = seq == 128 && batch == 16 ? "W2 encoder-256" : "encoder-256 S=" + std::to_string(seq);
  Graph& g = w.graph;
  const Var x = g.input("x", {batch, seq, 256});
  const Var lengths = g.input("lengths", {batch}, DType::i32);
  const Var y = nn::encoder_layer(x, nn::key_padding_bias(lengths, seq, DType::f32), "layer",
                                  {256, 8, 1024, 0.0, nn::NormStyle::post, nn::Activation::relu, 1e-5});
  w.objective = mean(square(y));
  w.forward_outputs = {w.objective};
  std::mt19937_64 rng(2);
  xt::xarray<float> xv = xt::xarray<float>::from_shape({static_cast<std::size_t>(batch), static_cast<std::size_t>(seq), 256});
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : xv) v = normal(rng);
  const auto lv = random_ints(rng, {static_cast<std::size_t>(batch)}, static_cast<int>(seq / 4), static_cast<int>(seq));
  feed(w, x, Tensor(std::move(xv)));
  feed(w, lengths, lv);
  bind_feeds(w);
  w.tokens_per_step = xt::sum(lv)();
}

void build_seq2seq_small(Workload& w) {
  w.name = "W3 seq2seq-small";
  models::Seq2SeqConfig c{model(128, 4, 512, 48), 128, 128, 2, 2, 8, 48, 48};
  const models::Seq2Seq m = models::seq2seq(w.graph, c);
  w.objective = m.objective;
  w.forward_outputs = {m.objective};
  std::mt19937_64 rng(3);
  const auto tgt_lengths = random_ints(rng, {8}, 8, 48);
  feed(w, m.src_tokens, random_ints(rng, {8, 48}, 0, 127));
  feed(w, m.src_lengths, random_ints(rng, {8}, 8, 48));
  feed(w, m.tgt_tokens, random_ints(rng, {8, 48}, 0, 127));
  feed(w, m.tgt_lengths, tgt_lengths);
  feed(w, m.labels, random_ints(rng, {8, 48}, 0, 127));
  bind_feeds(w);
  w.tokens_per_step = xt::sum(tgt_lengths)();
}

void build_gpt2(Workload& w, std::int64_t seq) {
  w.name = "W4 gpt2-124m T" + std::to_string(seq);
  models::ModelConfig gpt2 = model(768, 12, 3072, 1024);
  gpt2.norm = nn::NormStyle::pre;
  gpt2.activation = nn::Activation::gelu_tanh;
  gpt2.positions = models::Positions::learned;
  gpt2.init_std = 0.02;
  const std::int64_t batch = 4;
  const models::DecoderLM m = models::decoder_lm(w.graph, {gpt2, 50257, 12, true, batch, seq});
  w.objective = m.objective;
  w.forward_outputs = {m.objective};
  std::mt19937_64 rng(4);
  const std::vector<std::size_t> shape{static_cast<std::size_t>(batch), static_cast<std::size_t>(seq)};
  feed(w, m.tokens, random_ints(rng, shape, 0, 50256));
  xt::xarray<std::int32_t> lengths = xt::xarray<std::int32_t>::from_shape({shape[0]});
  lengths.fill(static_cast<std::int32_t>(seq));
  feed(w, m.lengths, std::move(lengths));
  feed(w, m.labels, random_ints(rng, shape, 0, 50256));
  bind_feeds(w);
  w.tokens_per_step = batch * seq;
}

}  // namespace xg::bench
