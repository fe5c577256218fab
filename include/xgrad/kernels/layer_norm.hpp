#pragma once
// LayerNorm over contiguous rows of length n, forward and backward (llm.c's layout, no graph).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "xgrad/kernels/parallel.hpp"
#include "xgrad/kernels/simd.hpp"

namespace xg::kernels {

/// Mean and 1/sqrt(variance + eps) of each of R rows of length n, in two passes (the second around
/// the mean, which keeps the variance accurate when the mean is large).
template <int R, class T>
void row_moments(const std::array<const T*, R>& row, std::int64_t n, T eps, T (&mean)[R], T (&rstd)[R]) {
  sums_of_terms<R, T>(
      n, [&](int r, std::int64_t i) { return load_batch(row[r] + i); }, [&](int r, std::int64_t i) { return row[r][i]; },
      mean);
  for (T& m : mean) m /= static_cast<T>(n);
  const auto deviation = [&]<class V>(int r, const V& v) { return (v - V(mean[r])) * (v - V(mean[r])); };
  T var[R];
  sums_of_terms<R, T>(
      n, [&](int r, std::int64_t i) { return deviation(r, load_batch(row[r] + i)); },
      [&](int r, std::int64_t i) { return deviation(r, row[r][i]); }, var);
  for (int r = 0; r < R; ++r) rstd[r] = T(1) / std::sqrt(var[r] / static_cast<T>(n) + eps);
}

/// y = (x - mean) * rstd * gamma + beta per row; gamma and beta may be null. y may equal x (a group's
/// moments are computed before any of its rows is written).
template <class T>
void layer_norm_forward(const T* x, const T* gamma, const T* beta, T* y, std::int64_t rows, std::int64_t n, T eps) {
  constexpr int R = kRowsSideBySide;
  for (std::int64_t first = 0; first < rows; first += R) {
    const auto row = row_group<R>(x, first, rows, n);
    T mean_of[R], rstd_of[R];
    row_moments<R>(row, n, eps, mean_of, rstd_of);
    for (int r = 0; r < R && first + r < rows; ++r) {
      const T mean = mean_of[r], rstd = rstd_of[r];
      const T* xr = row[r];
      T* yr = y + (first + r) * n;
      if (gamma != nullptr && beta != nullptr) {
        map_ternary(xr, gamma, beta, yr, n, [=]<class V>(V v, V g, V b) { return (v - V(mean)) * V(rstd) * g + b; });
      } else if (gamma != nullptr) {
        map_binary(xr, 1, gamma, 1, yr, n, [=]<class V>(V v, V g) { return (v - V(mean)) * V(rstd) * g; });
      } else if (beta != nullptr) {
        map_binary(xr, 1, beta, 1, yr, n, [=]<class V>(V v, V b) { return (v - V(mean)) * V(rstd) + b; });
      } else {
        map_unary(xr, yr, n, [=]<class V>(V v) { return (v - V(mean)) * V(rstd); });
      }
    }
  }
}

/// dx = rstd * (g' - mean(g') - x_hat * mean(g' * x_hat)) with g' = g * gamma (g when gamma is
/// null), the gradient through y = x_hat * gamma + beta for an upstream gradient g of y. When
/// partial_gamma (partial_beta) is not null, it receives the sum over these rows of g * x_hat (of
/// g), n values, while the rows are still in cache.
template <class T>
void layer_norm_backward(const T* x, const T* g, const T* gamma, T* dx, T* partial_gamma, T* partial_beta,
                         std::int64_t rows, std::int64_t n, T eps) {
  if (partial_gamma != nullptr) std::fill(partial_gamma, partial_gamma + n, T(0));
  if (partial_beta != nullptr) std::fill(partial_beta, partial_beta + n, T(0));
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    const T* gr = g + r * n;
    T* dr = dx + r * n;
    const T mean = reduce_sum(xr, n) / static_cast<T>(n);
    // Three passes per row: the mean; then the variance beside both sums of g' (which goes through
    // dx, overwritten element by element in the last pass), since (x - mean) * rstd summed against
    // g' is rstd times the sum against x - mean; then dx and the row's share of dgamma, once rstd is
    // known. A pass per sum and a second sweep for dgamma and dbeta took twice as long, and the
    // variance's own pass another 15% (bench/README.md).
    const auto [var_sum, g_sum, gx_sum] = sums_by_step<T, 3>(n, [&]<class V>(std::int64_t at, std::array<V, 3>& acc) {
      auto& [var_acc, g_acc, gx_acc] = acc;
      const V v = load_as<V>(xr + at) - V(mean), gv = load_as<V>(gr + at);
      if (partial_beta != nullptr) store_to(load_as<V>(partial_beta + at) + gv, partial_beta + at);
      const V scaled = gamma != nullptr ? gv * load_as<V>(gamma + at) : gv;
      store_to(scaled, dr + at);
      var_acc += v * v;
      g_acc += scaled;
      gx_acc += scaled * v;
    });
    const T rstd = T(1) / std::sqrt(var_sum / static_cast<T>(n) + eps);
    const T g_mean = g_sum / static_cast<T>(n);
    const T gx_mean = gx_sum * rstd / static_cast<T>(n);
    for_each_position<T>(n, [&]<class V>(std::int64_t at) {
      const V x_hat = (load_as<V>(xr + at) - V(mean)) * V(rstd);
      if (partial_gamma != nullptr) store_to(load_as<V>(partial_gamma + at) + load_as<V>(gr + at) * x_hat, partial_gamma + at);
      store_to(V(rstd) * (load_as<V>(dr + at) - V(g_mean) - x_hat * V(gx_mean)), dr + at);
    });
  }
}

/// Rows per block of the affine gradients: a block sums g * x_hat and g over its rows as it computes
/// their dx (instead of a second sweep over x and g by columns), and dgamma and dbeta then add the
/// blocks' sums in block order. Blocks follow the shape alone, so the sums do not depend on the
/// thread count.
inline constexpr std::int64_t kAffineBlockRows = 64;

inline std::int64_t affine_blocks(std::int64_t rows) { return (rows + kAffineBlockRows - 1) / kAffineBlockRows; }

/// Scratch elements layer_norm_backward() needs: each block's sums for dgamma and dbeta.
inline std::int64_t layer_norm_backward_scratch(std::int64_t rows, std::int64_t n) { return 2 * affine_blocks(rows) * n; }

/// Both, with the rows split across a pool.
template <class T>
void layer_norm_forward(ThreadPool* pool, const T* x, const T* gamma, const T* beta, T* y, std::int64_t rows,
                        std::int64_t n, T eps) {
  parallel_rows(pool, rows, n, [&](std::int64_t first, std::int64_t last) {
    layer_norm_forward(x + first * n, gamma, beta, y + first * n, last - first, n, eps);
  });
}

/// dx, dgamma and dbeta (either may be null) in blocks of rows spread over the pool, then the
/// blocks' sums added by columns (cut at multiples of every SIMD width, so each column takes the
/// same path as in one serial pass); scratch holds layer_norm_backward_scratch() elements.
template <class T>
void layer_norm_backward(ThreadPool* pool, const T* x, const T* g, const T* gamma, T* dx, T* dgamma, T* dbeta,
                         T* scratch, std::int64_t rows, std::int64_t n, T eps) {
  const std::int64_t blocks = affine_blocks(rows);
  T* const gamma_sums = dgamma != nullptr ? scratch : nullptr;
  T* const beta_sums = dbeta != nullptr ? scratch + blocks * n : nullptr;
  const auto block = [&](std::int64_t b) {
    const std::int64_t first = b * kAffineBlockRows, last = std::min(rows, first + kAffineBlockRows);
    layer_norm_backward(x + first * n, g + first * n, gamma, dx + first * n, gamma_sums ? gamma_sums + b * n : nullptr,
                        beta_sums ? beta_sums + b * n : nullptr, last - first, n, eps);
  };
  if (blocks < 2 || !worth_splitting(pool, rows * n)) {
    for (std::int64_t b = 0; b < blocks; ++b) block(b);
  } else {
    pool->parallel_for(blocks, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t b = first; b < last; ++b) block(b);
    });
  }
  if (rows == 0) {
    if (dgamma != nullptr) std::fill(dgamma, dgamma + n, T(0));
    if (dbeta != nullptr) std::fill(dbeta, dbeta + n, T(0));
    return;
  }
  if (dgamma == nullptr && dbeta == nullptr) return;
  const auto add_blocks = [&](const T* sums, T* total, std::int64_t c0, std::int64_t c1) {
    std::copy(sums + c0, sums + c1, total + c0);
    for (std::int64_t b = 1; b < blocks; ++b) {
      map_binary(total + c0, 1, sums + b * n + c0, 1, total + c0, c1 - c0, []<class V>(V sum, V v) { return sum + v; });
    }
  };
  const auto columns = [&](std::int64_t c0, std::int64_t c1) {
    if (dgamma != nullptr) add_blocks(gamma_sums, dgamma, c0, c1);
    if (dbeta != nullptr) add_blocks(beta_sums, dbeta, c0, c1);
  };
  const std::int64_t column_blocks = (n + kChunkAlignment - 1) / kChunkAlignment;
  if (column_blocks < 2 || !worth_splitting(pool, blocks * n)) {
    columns(0, n);
    return;
  }
  pool->parallel_for(column_blocks, [&](std::int64_t first, std::int64_t last) {
    columns(first * kChunkAlignment, std::min(n, last * kChunkAlignment));
  });
}

}  // namespace xg::kernels
