// xgrad's own kernels against oneDNN's primitives for the non-GEMM ops of W1-W3, at the workloads'
// shapes, both on 2 threads (xgrad's pool; oneDNN's OpenMP): LayerNorm forward and backward (dx,
// dgamma, dbeta), the loss's log-softmax over the vocabulary, and GELU (tanh) and ReLU forward.
// Each is timed in blocks of repeats, the two libraries alternating block by block with a pause
// between, best of --rounds. In a compiled Program, GELU and ReLU run inside the product's epilogue or a fused
// elementwise loop, so a standalone kernel is the most oneDNN could replace.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <xgrad/kernels/functors.hpp>
#include <xgrad/kernels/layer_norm.hpp>
#include <xgrad/kernels/parallel.hpp>
#include <xgrad/kernels/softmax.hpp>
#include <xgrad/thread_pool.hpp>

#include "timing.hpp"

namespace {

using dnnl::memory;
using Dims = memory::dims;
using Args = std::unordered_map<int, memory>;

constexpr float kEps = 1e-5f;

std::vector<float> uniform(std::int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = dist(rng);
  return v;
}

/// Best microseconds per call of `ours` and `theirs`, alternating blocks of calls.
struct Timing {
  int rounds = 10;     // alternating blocks per op and library; the best counts
  int pause_ms = 20;   // before each block
};

std::pair<double, double> race(const Timing& timing, const std::function<void()>& ours, const std::function<void()>& theirs) {
  double best_ours = 1e30, best_theirs = 1e30;
  for (int i = 0; i < 3; ++i) {
    ours();
    theirs();
  }
  constexpr int kWarm = 10, kBlock = 40;
  for (int round = 0; round < timing.rounds; ++round) {
    for (int which = 0; which < 2; ++which) {
      // Both libraries' idle threads poll for a while before they sleep (xgrad's pool for 100 us,
      // OpenMP's for longer): a pause lets the other's threads go to sleep first. The calls right
      // after it wake sleeping threads and caches that other work on the host has cooled (up to 2x
      // slower on this VM), which a training step, its kernels back to back, never sees: untimed.
      std::this_thread::sleep_for(std::chrono::milliseconds(timing.pause_ms));
      const auto& f = which == 0 ? ours : theirs;
      for (int w = 0; w < kWarm; ++w) f();
      const auto start = xg::bench::Clock::now();
      for (int r = 0; r < kBlock; ++r) f();
      const double us = xg::bench::ms_since(start) * 1e3 / kBlock;
      double& best = which == 0 ? best_ours : best_theirs;
      best = std::min(best, us);
    }
  }
  return {best_ours, best_theirs};
}

void report(const std::string& op, std::int64_t rows, std::int64_t n, std::pair<double, double> us) {
  fmt::print("{:<22} {:>6} x {:<5} {:>10.1f} {:>10.1f} {:>7.2f}  {}\n", op, rows, n, us.first, us.second, us.first / us.second,
             us.first <= us.second ? "xgrad" : "oneDNN");
}

struct Context {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  xg::ThreadPool pool{2};
  Timing timing;
};

memory make(Context& c, const Dims& dims, std::vector<float>& data) {
  const memory::format_tag tag = dims.size() == 1 ? memory::format_tag::a : memory::format_tag::ab;
  return memory({dims, memory::data_type::f32, tag}, c.engine, data.data());
}

void layer_norm(Context& c, std::int64_t rows, std::int64_t n) {
  auto x = uniform(rows * n, 1), g = uniform(rows * n, 2), gamma = uniform(n, 3), beta = uniform(n, 4);
  std::vector<float> y(x.size()), dx(x.size()), dgamma(n), dbeta(n), scratch(static_cast<std::size_t>(xg::kernels::layer_norm_backward_scratch(rows, n))), mean(rows), variance(rows);
  const memory::desc data_md({rows, n}, memory::data_type::f32, memory::format_tag::ab);
  const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  const dnnl::layer_normalization_forward::primitive_desc forward_pd(
      {dnnl::prop_kind::forward_training, data_md, kEps, flags}, c.engine);
  const dnnl::layer_normalization_forward forward(forward_pd);
  std::vector<float> their_y(x.size()), their_dx(x.size()), their_dgamma(n), their_dbeta(n);
  const Args forward_args{{DNNL_ARG_SRC, make(c, {rows, n}, x)},        {DNNL_ARG_DST, make(c, {rows, n}, their_y)},
                          {DNNL_ARG_MEAN, make(c, {rows}, mean)},       {DNNL_ARG_VARIANCE, make(c, {rows}, variance)},
                          {DNNL_ARG_SCALE, make(c, {n}, gamma)},        {DNNL_ARG_SHIFT, make(c, {n}, beta)}};
  report("layer_norm", rows, n,
         race(c.timing, [&] { xg::kernels::layer_norm_forward(&c.pool, x.data(), gamma.data(), beta.data(), y.data(), rows, n, kEps); },
              [&] {
                forward.execute(c.stream, forward_args);
                c.stream.wait();
              }));
  const dnnl::layer_normalization_backward::primitive_desc backward_pd(
      {dnnl::prop_kind::backward, data_md, data_md, kEps, flags}, c.engine, forward_pd);
  const dnnl::layer_normalization_backward backward(backward_pd);
  const Args backward_args{{DNNL_ARG_SRC, make(c, {rows, n}, x)},          {DNNL_ARG_DIFF_DST, make(c, {rows, n}, g)},
                           {DNNL_ARG_MEAN, make(c, {rows}, mean)},         {DNNL_ARG_VARIANCE, make(c, {rows}, variance)},
                           {DNNL_ARG_SCALE, make(c, {n}, gamma)},          {DNNL_ARG_SHIFT, make(c, {n}, beta)},
                           {DNNL_ARG_DIFF_SRC, make(c, {rows, n}, their_dx)},
                           {DNNL_ARG_DIFF_SCALE, make(c, {n}, their_dgamma)}, {DNNL_ARG_DIFF_SHIFT, make(c, {n}, their_dbeta)}};
  report("layer_norm backward", rows, n,
         race(c.timing,
              [&] {
                xg::kernels::layer_norm_backward(&c.pool, x.data(), g.data(), gamma.data(), dx.data(), dgamma.data(), dbeta.data(),
                                                 scratch.data(), rows, n, kEps);
              },
              [&] {
                backward.execute(c.stream, backward_args);
                c.stream.wait();
              }));
}

void log_softmax(Context& c, std::int64_t rows, std::int64_t n) {
  auto x = uniform(rows * n, 5);
  std::vector<float> y(x.size()), their_y(x.size());
  const memory::desc md({rows, n}, memory::data_type::f32, memory::format_tag::ab);
  const dnnl::logsoftmax_forward::primitive_desc pd({dnnl::prop_kind::forward_inference, md, 1}, c.engine);
  const dnnl::logsoftmax_forward primitive(pd);
  const Args args{{DNNL_ARG_SRC, make(c, {rows, n}, x)}, {DNNL_ARG_DST, make(c, {rows, n}, their_y)}};
  report("log_softmax", rows, n,
         race(c.timing, [&] { xg::kernels::softmax_rows<true>(&c.pool, x.data(), y.data(), rows, n, 1); },
              [&] {
                primitive.execute(c.stream, args);
                c.stream.wait();
              }));
}

template <class Functor>
void eltwise(Context& c, const std::string& name, dnnl::algorithm algorithm, std::int64_t rows, std::int64_t n) {
  auto x = uniform(rows * n, 6);
  std::vector<float> y(x.size()), their_y(x.size());
  const memory::desc md({rows, n}, memory::data_type::f32, memory::format_tag::ab);
  const dnnl::eltwise_forward::primitive_desc pd({dnnl::prop_kind::forward_inference, algorithm, md, 0.0f, 0.0f}, c.engine);
  const dnnl::eltwise_forward primitive(pd);
  const Args args{{DNNL_ARG_SRC, make(c, {rows, n}, x)}, {DNNL_ARG_DST, make(c, {rows, n}, their_y)}};
  report(name, rows, n,
         race(c.timing, [&] { xg::kernels::map_unary(&c.pool, x.data(), y.data(), rows * n, Functor{}); },
              [&] {
                primitive.execute(c.stream, args);
                c.stream.wait();
              }));
}

}  // namespace

int main(int argc, char** argv) {
  Timing timing;
  CLI::App app{"xgrad's non-GEMM kernels against oneDNN's primitives at W1-W3's shapes, 2 threads each.", "onednn_ops"};
  app.option_defaults()->always_capture_default();
  app.add_option("--rounds", timing.rounds, "alternating blocks per op and library (the best counts)")->check(CLI::PositiveNumber);
  app.add_option("--pause-ms", timing.pause_ms, "pause before each block, so the other library's threads sleep (0: none)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  omp_set_num_threads(2);
  Context c{.timing = timing};
  fmt::print("{:<22} {:>14} {:>10} {:>10} {:>7}  {}\n", "op (W1: 512 tokens,", "rows x n", "xgrad us", "oneDNN us", "ratio",
             "faster");
  fmt::print("  W2: 2048, W3: 384)\n");
  using namespace xg::kernels::functors;
  for (const auto& [rows, width, hidden] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{512, 128, 512},
                                            {2048, 256, 1024}, {384, 128, 512}}) {
    layer_norm(c, rows, width);
    eltwise<GeluTanh>(c, "gelu (tanh)", dnnl::algorithm::eltwise_gelu_tanh, rows, hidden);
    eltwise<Relu>(c, "relu", dnnl::algorithm::eltwise_relu, rows, hidden);
    if (width == 128) log_softmax(c, rows, 128);  // the LM heads' vocabulary of 128
  }
}
