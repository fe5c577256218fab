// kernels::gemm routes each f32 product to oneDNN or OpenBLAS by its shape: every route must compute
// the product (checked against a double-precision sum), and the route must not depend on the thread
// that runs a piece, so that results agree bit for bit whatever the pool.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "xgrad/kernels/gemm.hpp"
#include "xgrad/thread_pool.hpp"

namespace {

struct Product {
  bool transpose_a, transpose_b;
  std::int64_t m, n, k;
};

// Both routes on a machine where OpenBLAS shares products (a transposed left operand over k >= 256,
// a plain right operand with rows of 512 or more), the rest on oneDNN; every layout, odd sizes.
const Product kProducts[] = {
    {false, false, 37, 29, 41}, {false, true, 64, 48, 32},   {true, false, 33, 17, 300}, {true, false, 128, 96, 512},
    {false, false, 70, 600, 24}, {false, false, 48, 1024, 64}, {true, true, 19, 23, 45},   {false, true, 40, 520, 300},
    {true, false, 256, 200, 1030},  // a weight gradient: at most two pieces
};

std::vector<float> uniform(std::int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = dist(rng);
  return v;
}

struct Reference {
  std::vector<double> c;          // op(A) op(B), every sum in double
  std::vector<double> magnitude;  // sum of |a b| over each dot product
};

Reference reference(const Product& p, const std::vector<float>& a, const std::vector<float>& b) {
  const std::int64_t lda = p.transpose_a ? p.m : p.k, ldb = p.transpose_b ? p.k : p.n;
  Reference r{std::vector<double>(static_cast<std::size_t>(p.m * p.n)), std::vector<double>(static_cast<std::size_t>(p.m * p.n))};
  for (std::int64_t i = 0; i < p.m; ++i) {
    for (std::int64_t j = 0; j < p.n; ++j) {
      double sum = 0.0, magnitude = 0.0;
      for (std::int64_t l = 0; l < p.k; ++l) {
        const float x = p.transpose_a ? a[static_cast<std::size_t>(l * lda + i)] : a[static_cast<std::size_t>(i * lda + l)];
        const float y = p.transpose_b ? b[static_cast<std::size_t>(j * ldb + l)] : b[static_cast<std::size_t>(l * ldb + j)];
        sum += static_cast<double>(x) * static_cast<double>(y);
        magnitude += std::abs(static_cast<double>(x) * static_cast<double>(y));
      }
      r.c[static_cast<std::size_t>(i * p.n + j)] = sum;
      r.magnitude[static_cast<std::size_t>(i * p.n + j)] = magnitude;
    }
  }
  return r;
}

std::vector<float> product_on(xg::ThreadPool* pool, const Product& p, const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> c(static_cast<std::size_t>(p.m * p.n), std::nanf(""));
  xg::kernels::gemm_batch(pool, p.transpose_a, p.transpose_b, p.m, p.n, p.k, 1, a.data(), 0, b.data(), 0, c.data());
  return c;
}

}  // namespace

TEST_CASE("every f32 product agrees with a double-precision sum, whichever library runs it") {
  xg::ThreadPool pool(2);
  for (const Product& p : kProducts) {
    CAPTURE(p.transpose_a);
    CAPTURE(p.transpose_b);
    CAPTURE(p.m);
    CAPTURE(p.n);
    CAPTURE(p.k);
    const std::int64_t ldb = p.transpose_b ? p.k : p.n;
    CAPTURE(static_cast<int>(xg::kernels::f32_gemm_library(p.transpose_a, p.transpose_b, p.k, ldb)));
    const auto a = uniform(p.m * p.k, 1), b = uniform(p.k * p.n, 2);
    const Reference want = reference(p, a, b);
    const std::vector<float> got = product_on(&pool, p, a, b);
    // A float32 dot product of k terms, summed in any order, is within about k * 2^-24 of the sum
    // of the terms' magnitudes (Higham, gamma_k); a wrong operand, stride or layout is far outside.
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < want.c.size(); ++i) {
      const double tolerance = 1.01 * static_cast<double>(p.k + 1) * 0x1p-24 * want.magnitude[i];
      wrong += !(std::abs(static_cast<double>(got[i]) - want.c[i]) <= tolerance);
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("a product's bits do not depend on the pool, nor on another thread running products at once") {
  xg::ThreadPool one(1), two(2);
  for (const Product& p : kProducts) {
    const auto a = uniform(p.m * p.k, 3), b = uniform(p.k * p.n, 4);
    const std::vector<float> serial = product_on(&one, p, a, b);
    std::vector<float> on_other_thread;
    std::thread other([&] { on_other_thread = product_on(nullptr, p, a, b); });
    const std::vector<float> pooled = product_on(&two, p, a, b);
    other.join();
    CHECK(std::memcmp(serial.data(), pooled.data(), serial.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(serial.data(), on_other_thread.data(), serial.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("the shapes OpenBLAS is asked for: weight gradients over long sums and wide plain right operands") {
  using xg::kernels::prefers_openblas;
  CHECK(prefers_openblas(true, false, 2048, 256));  // dW = dY^T X over 2048 tokens
  CHECK_FALSE(prefers_openblas(true, false, 64, 128));   // an attention block's dK
  CHECK(prefers_openblas(false, false, 256, 1024));  // rows of 4 KiB
  CHECK_FALSE(prefers_openblas(false, false, 128, 128));
  CHECK_FALSE(prefers_openblas(false, true, 256, 256));  // x W^T: oneDNN's best layout
}

TEST_CASE("a product whose inner dimension is long against its output is cut in at most two pieces") {
  using xg::kernels::gemm_pieces;
  CHECK(gemm_pieces(256, 256, 2048, 1).per_product == 2);   // W2's dW of a 256 x 256 projection
  CHECK(gemm_pieces(256, 1024, 2048, 1).per_product == 2);  // and of the feed-forward's first layer
  CHECK(gemm_pieces(1024, 256, 2048, 1).per_product == 2);
  CHECK(gemm_pieces(2048, 256, 256, 1).per_product == 8);   // x W^T: k short against the rows
  CHECK(gemm_pieces(256, 256, 511, 1).per_product == 8);    // k just under twice the longer side
}
