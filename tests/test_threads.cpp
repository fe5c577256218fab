// What the runtime promises about threads: results do not depend on the pool's size (every model
// family's training values agree bit for bit with 1, 2, 3 and 4 threads), Programs run at once from
// several threads agree with serial runs, the pool copes with nesting, contention and exceptions,
// and a run flushes subnormal values on every thread without changing the caller's own setting.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <xmmintrin.h>

#include <doctest/doctest.h>

#include "graph/registry.hpp"
#include "trained_model.hpp"
#include "xgrad/kernels/layer_norm.hpp"
#include "xgrad/kernels/softmax.hpp"
#include "xgrad/xgrad.hpp"

using namespace xg;

namespace {

// Sizes at which products are cut into several pieces, elementwise ops and rows are split, and
// attention heads spread over the threads.
constexpr std::string_view kDecoder = "vocab=64 d_model=128 heads=4 d_ff=512 layers=2 batch=8 seq=64 dropout=0.1";
constexpr std::string_view kEncoder =
    "vocab=64 classes=5 d_model=128 heads=4 d_ff=512 layers=2 batch=8 seq=64 dropout=0.1 activation=gelu";
constexpr std::string_view kSeq2seq =
    "src_vocab=40 tgt_vocab=48 d_model=128 heads=4 d_ff=256 encoder_layers=1 decoder_layers=1 batch=8 src_len=48 "
    "tgt_len=40 dropout=0.1";

void check_thread_counts(std::string_view family, std::string_view config) {
  testing::TrainedModel model(family, config);
  const auto serial = model.run(std::make_shared<ThreadPool>(1));
  for (int threads : {2, 3, 4}) {
    CAPTURE(threads);
    const auto split = model.run(std::make_shared<ThreadPool>(threads));
    REQUIRE(split.size() == serial.size());
    for (std::size_t k = 0; k < serial.size(); ++k) {
      CAPTURE(k);
      CHECK(split[k] == serial[k]);
    }
  }
}

/// A row's mean and 1 / sqrt(variance + eps) in double, from their definitions.
struct RowReference {
  double mean, rstd;
};
RowReference row_reference(const float* row, std::int64_t n, double eps) {
  double mean = 0.0, var = 0.0;
  for (std::int64_t c = 0; c < n; ++c) mean += row[c];
  mean /= static_cast<double>(n);
  for (std::int64_t c = 0; c < n; ++c) var += (row[c] - mean) * (row[c] - mean);
  return {mean, 1.0 / std::sqrt(var / static_cast<double>(n) + eps)};
}

std::vector<float> normal_values(std::size_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.5f, 2.0f);
  std::vector<float> v(count);
  for (float& e : v) e = dist(rng);
  return v;
}

}  // namespace

TEST_CASE("training values agree bit for bit with 1, 2, 3 and 4 threads: decoder LM") {
  check_thread_counts("decoder_lm", kDecoder);
}
TEST_CASE("training values agree bit for bit with 1, 2, 3 and 4 threads: encoder classifier") {
  check_thread_counts("encoder_classifier", kEncoder);
}
TEST_CASE("training values agree bit for bit with 1, 2, 3 and 4 threads: encoder-decoder") {
  check_thread_counts("seq2seq", kSeq2seq);
}

TEST_CASE("LayerNorm's backward pass sums dgamma and dbeta by blocks of rows: the same bits on 1-4 threads, and right") {
  // 300 rows: four whole blocks and a short one; rows of 100: a SIMD tail and two column chunks.
  constexpr std::int64_t rows = 300, n = 100;
  static_assert(rows % kernels::kAffineBlockRows != 0 && rows > 4 * kernels::kAffineBlockRows);
  const std::vector<float> x = normal_values(rows * n, 7), g = normal_values(rows * n, 8), gamma = normal_values(n, 9);
  constexpr float eps = 1e-5f;
  struct Grads {
    std::vector<float> dx, dgamma, dbeta;
  };
  const auto backward = [&](ThreadPool* pool) {
    Grads out{std::vector<float>(rows * n), std::vector<float>(n), std::vector<float>(n)};
    std::vector<float> scratch(static_cast<std::size_t>(kernels::layer_norm_backward_scratch(rows, n)), std::nanf(""));
    kernels::layer_norm_backward(pool, x.data(), g.data(), gamma.data(), out.dx.data(), out.dgamma.data(), out.dbeta.data(),
                                 scratch.data(), rows, n, eps);
    return out;
  };
  const Grads serial = backward(nullptr);
  for (int threads : {1, 2, 3, 4}) {
    CAPTURE(threads);
    ThreadPool pool(threads);
    const Grads split = backward(&pool);
    CHECK(split.dx == serial.dx);
    CHECK(split.dgamma == serial.dgamma);
    CHECK(split.dbeta == serial.dbeta);
  }
  // Against the definitions, summed in double: dgamma_c = sum_r g x_hat, dbeta_c = sum_r g, and
  // dx = rstd (g' - mean(g') - x_hat mean(g' x_hat)) with g' = g gamma.
  std::vector<double> dgamma(n, 0.0), dbeta(n, 0.0), magnitude(n, 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const RowReference ref = row_reference(&x[static_cast<std::size_t>(r * n)], n, eps);
    const double mean = ref.mean, rstd = ref.rstd;
    double scaled_mean = 0.0, scaled_x_hat_mean = 0.0;
    for (std::int64_t c = 0; c < n; ++c) {
      const auto at = static_cast<std::size_t>(r * n + c);
      const double scaled = static_cast<double>(g[at]) * gamma[static_cast<std::size_t>(c)];
      scaled_mean += scaled / n;
      scaled_x_hat_mean += scaled * (x[at] - mean) * rstd / n;
    }
    for (std::int64_t c = 0; c < n; ++c) {
      const auto at = static_cast<std::size_t>(r * n + c);
      const double scaled = static_cast<double>(g[at]) * gamma[static_cast<std::size_t>(c)];
      const double expected = rstd * (scaled - scaled_mean - (x[at] - mean) * rstd * scaled_x_hat_mean);
      CHECK(std::abs(serial.dx[at] - expected) <= 1e-5 * rstd * (std::abs(scaled) + 1.0));
    }
    for (std::int64_t c = 0; c < n; ++c) {
      const double gc = g[static_cast<std::size_t>(r * n + c)], term = gc * (x[static_cast<std::size_t>(r * n + c)] - mean) * rstd;
      dgamma[static_cast<std::size_t>(c)] += term;
      dbeta[static_cast<std::size_t>(c)] += gc;
      magnitude[static_cast<std::size_t>(c)] += std::abs(term) + std::abs(gc);
    }
  }
  for (std::int64_t c = 0; c < n; ++c) {
    CAPTURE(c);
    const auto at = static_cast<std::size_t>(c);
    CHECK(std::abs(serial.dgamma[at] - dgamma[at]) <= 1e-5 * magnitude[at]);
    CHECK(std::abs(serial.dbeta[at] - dbeta[at]) <= 1e-5 * magnitude[at]);
  }
}

namespace {

/// A row kernel run(pool, x, y, rows) over rows of n that computes several rows side by side gives
/// each row the same bits on 1-4 threads, alone (so in every position of a group) and in place as
/// in one serial call over all rows, which it returns.
template <class Run>
std::vector<float> check_rows_side_by_side(const std::vector<float>& x, std::int64_t rows, std::int64_t n, Run run) {
  std::vector<float> serial(x.size(), std::nanf(""));
  run(nullptr, x.data(), serial.data(), rows);
  for (int threads : {1, 2, 3, 4}) {
    CAPTURE(threads);
    ThreadPool pool(threads);
    std::vector<float> split(x.size(), std::nanf(""));
    run(&pool, x.data(), split.data(), rows);
    CHECK(split == serial);
  }
  std::vector<float> alone(x.size(), std::nanf(""));
  for (std::int64_t r = 0; r < rows; ++r) {
    run(nullptr, &x[static_cast<std::size_t>(r * n)], &alone[static_cast<std::size_t>(r * n)], std::int64_t{1});
  }
  CHECK(alone == serial);
  std::vector<float> in_place = x;
  run(nullptr, in_place.data(), in_place.data(), rows);
  CHECK(in_place == serial);
  return serial;
}

// 301 rows: groups of kernels::kRowsSideBySide and a short last one; rows of 100: a SIMD tail.
constexpr std::int64_t kSideRows = 301, kSideLength = 100;
static_assert(kSideRows % kernels::kRowsSideBySide != 0);

}  // namespace

TEST_CASE("LayerNorm's forward pass normalizes rows side by side: a row's bits alone, in any group, in place and on 1-4 threads") {
  constexpr std::int64_t rows = kSideRows, n = kSideLength;
  const std::vector<float> x = normal_values(rows * n, 11), gamma = normal_values(n, 12), beta = normal_values(n, 13);
  constexpr float eps = 1e-5f;
  const std::vector<float> y =
      check_rows_side_by_side(x, rows, n, [&](ThreadPool* pool, const float* in, float* out, std::int64_t count) {
        kernels::layer_norm_forward(pool, in, gamma.data(), beta.data(), out, count, n, eps);
      });
  for (std::int64_t r = 0; r < rows; ++r) {
    const RowReference ref = row_reference(&x[static_cast<std::size_t>(r * n)], n, eps);
    for (std::int64_t c = 0; c < n; ++c) {
      const auto at = static_cast<std::size_t>(r * n + c), col = static_cast<std::size_t>(c);
      const double expected = (x[at] - ref.mean) * ref.rstd * gamma[col] + beta[col];
      CHECK(std::abs(y[at] - expected) <= 1e-5 * (std::abs(expected) + 1.0));
    }
  }
}

TEST_CASE("log_softmax sums rows side by side: a row's bits alone, in any group, in place and on 1-4 threads") {
  constexpr std::int64_t rows = kSideRows, n = kSideLength;
  const std::vector<float> x = normal_values(rows * n, 14);
  const std::vector<float> y =
      check_rows_side_by_side(x, rows, n, [&](ThreadPool* pool, const float* in, float* out, std::int64_t count) {
        kernels::softmax_rows<true>(pool, in, out, count, n, 1);
      });
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = &x[static_cast<std::size_t>(r * n)];
    const double top = *std::max_element(row, row + n);
    double total = 0.0;
    for (std::int64_t c = 0; c < n; ++c) total += std::exp(row[c] - top);
    for (std::int64_t c = 0; c < n; ++c) {
      const double expected = row[c] - top - std::log(total);
      CHECK(std::abs(y[static_cast<std::size_t>(r * n + c)] - expected) <= 1e-5 * (std::abs(expected) + 1.0));
    }
  }
}

TEST_CASE("two Programs run at once from two threads give their serial results") {
  testing::TrainedModel decoder("decoder_lm", kDecoder), encoder("encoder_classifier", kEncoder);
  // Both share the process's default pool, so each run meets the other's jobs.
  Program a = compile(decoder.graph, decoder.outputs), b = compile(encoder.graph, encoder.outputs);
  const auto bytes_of = [](const Program& p, const std::vector<Var>& outputs) {
    std::vector<std::byte> all;
    for (Var v : outputs) {
      const TensorRef t = p.view(v);
      const auto* data = static_cast<const std::byte*>(t.data);
      all.insert(all.end(), data, data + t.numel() * size_of(t.dtype));
    }
    return all;
  };
  a.run(decoder.feeds);
  b.run(encoder.feeds);
  const auto serial_a = bytes_of(a, decoder.outputs), serial_b = bytes_of(b, encoder.outputs);
  int mismatches_a = 0, mismatches_b = 0;
  std::thread other([&] {
    for (int r = 0; r < 30; ++r) {
      b.run(encoder.feeds);
      mismatches_b += bytes_of(b, encoder.outputs) != serial_b;
    }
  });
  for (int r = 0; r < 30; ++r) {
    a.run(decoder.feeds);
    mismatches_a += bytes_of(a, decoder.outputs) != serial_a;
  }
  other.join();
  CHECK(mismatches_a == 0);
  CHECK(mismatches_b == 0);
}

TEST_CASE("the pool: every item once, nested calls inline, exceptions rethrown, a busy pool runs the caller's chunks") {
  ThreadPool pool(3);
  std::vector<int> hits(1000, 0);
  pool.parallel_for(1000, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) ++hits[static_cast<std::size_t>(i)];
    // A kernel calling back into the pool: its work runs on the calling thread.
    std::int64_t inner = 0;
    pool.parallel_for(10, [&](std::int64_t b, std::int64_t e) { inner += e - b; });
    CHECK(inner == 10);
  });
  CHECK(std::count(hits.begin(), hits.end(), 1) == 1000);
  CHECK_THROWS_WITH_AS(pool.parallel_for(8, [](std::int64_t begin, std::int64_t) {
    if (begin > 0) throw ValueError("chunk failed");
  }), "chunk failed", ValueError);
  // Four threads sharing the pool at once.
  std::vector<std::thread> callers;
  std::vector<std::int64_t> sums(4, 0);
  for (std::size_t c = 0; c < 4; ++c) {
    callers.emplace_back([&, c] {
      for (int r = 0; r < 200; ++r) {
        std::vector<std::int64_t> part(3, 0);
        pool.parallel_for(3, [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t i = begin; i < end; ++i) part[static_cast<std::size_t>(i)] = i + 1;
        });
        sums[c] += part[0] + part[1] + part[2];
      }
    });
  }
  for (std::thread& t : callers) t.join();
  for (std::int64_t s : sums) CHECK(s == 200 * 6);
  CHECK_THROWS_AS(ThreadPool(0), ValueError);
  CHECK(ThreadPool::process_default() == ThreadPool::process_default());
  CHECK(ThreadPool::with_threads(0) == ThreadPool::process_default());
}

TEST_CASE("a run flushes subnormal values on every thread and restores the caller's float control") {
  // f32: 1e-30 * 1e-10 = 1e-40 is subnormal (the smallest normal is 1.2e-38).
  const auto run = [](bool flush) {
    Graph g;
    const Var x = g.input("x", {1 << 16});  // large enough that the multiply is split across the pool
    const Var y = x * g.scalar(1e-10);
    Program p = compile(g, {y}, {.pool = std::make_shared<ThreadPool>(2), .flush_denormals = flush});
    const xt::xarray<float> xv = xt::ones<float>({std::size_t{1} << 16}) * 1e-30f;
    const unsigned before = _mm_getcsr();
    p.run({{x, xv}});
    CHECK(_mm_getcsr() == before);  // the caller's control word, untouched
    const xt::xarray<float> yv = p.get<float>(y);
    return std::count_if(yv.begin(), yv.end(), [](float v) { return v == 0.0f; });
  };
  CHECK(run(true) == 1 << 16);  // every element, whichever thread computed it
  CHECK(run(false) == 0);       // gradual underflow: 1e-40 is representable
  // Denormals-are-zero: a subnormal operand reads as zero.
  Graph g;
  const Var x = g.input("x", {4});
  const Var y = x + g.scalar(0.0);
  Program p = compile(g, {y});
  const float tiny = std::numeric_limits<float>::denorm_min() * 1000;
  const xt::xarray<float> xv = {tiny, tiny, 1.0f, -tiny};
  p.run({{x, xv}});
  const xt::xarray<float> expected = {0.0f, 0.0f, 1.0f, 0.0f};
  CHECK(p.get<float>(y) == expected);
}
