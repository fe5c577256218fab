#pragma once
// LayerNorm over contiguous rows of length n, forward and backward (llm.c's layout, no graph).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "xgrad/kernels/parallel.hpp"
#include "xgrad/kernels/simd.hpp"

namespace xg::kernels {

template <class T>
struct RowMoments {
  T mean, rstd;
};

/// Mean and 1/sqrt(variance + eps) of a row, in two passes (the second around the mean, which keeps
/// the variance accurate when the mean is large).
template <class T>
RowMoments<T> row_moments(const T* x, std::int64_t n, T eps) {
  const T mean = reduce_sum(x, n) / static_cast<T>(n);
  const T var = reduce_binary(x, x, n, [mean]<class V>(V a, V) { return (a - V(mean)) * (a - V(mean)); }) / static_cast<T>(n);
  return {mean, T(1) / std::sqrt(var + eps)};
}

/// y = (x - mean) * rstd * gamma + beta per row; gamma and beta may be null. y may equal x.
template <class T>
void layer_norm_forward(const T* x, const T* gamma, const T* beta, T* y, std::int64_t rows, std::int64_t n, T eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    const RowMoments<T> mo = row_moments(xr, n, eps);
    const T mean = mo.mean, rstd = mo.rstd;
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

/// dx = rstd * (g' - mean(g') - x_hat * mean(g' * x_hat)) with g' = g * gamma (g when gamma is
/// null), the gradient through y = x_hat * gamma + beta for an upstream gradient g of y; each row's
/// mean and rstd go to moments[2 r] and moments[2 r + 1] for layer_norm_affine_grads.
template <class T>
void layer_norm_backward(const T* x, const T* g, const T* gamma, T* dx, T* moments, std::int64_t rows, std::int64_t n,
                         T eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    const T* gr = g + r * n;
    T* dr = dx + r * n;
    const RowMoments<T> mo = row_moments(xr, n, eps);
    const T mean = mo.mean, rstd = mo.rstd;
    moments[2 * r] = mean;
    moments[2 * r + 1] = rstd;
    if (gamma != nullptr) {  // g' goes through dx, which the last map then overwrites element by element
      map_binary(gr, 1, gamma, 1, dr, n, []<class V>(V a, V b) { return a * b; });
      gr = dr;
    }
    const T g_mean = reduce_sum(gr, n) / static_cast<T>(n);
    const T gx_mean = reduce_binary(gr, xr, n, [=]<class V>(V g, V v) { return g * (v - V(mean)); }) * rstd / static_cast<T>(n);
    map_binary(xr, 1, gr, 1, dr, n,
               [=]<class V>(V v, V g) { return V(rstd) * (g - V(g_mean) - (v - V(mean)) * V(rstd) * V(gx_mean)); });
  }
}

/// Columns [c0, c1) of dgamma = sum over rows of g * x_hat and dbeta = sum over rows of g (either
/// may be null), from the moments layer_norm_backward stored. Each column is summed over the rows in
/// order, so the result does not depend on how the columns are split.
template <class T>
void layer_norm_affine_grads(const T* x, const T* g, const T* moments, T* dgamma, T* dbeta, std::int64_t rows,
                             std::int64_t n, std::int64_t c0, std::int64_t c1) {
  const std::int64_t width = c1 - c0;
  if (dgamma != nullptr) std::fill(dgamma + c0, dgamma + c1, T(0));
  if (dbeta != nullptr) std::fill(dbeta + c0, dbeta + c1, T(0));
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n + c0;
    const T* gr = g + r * n + c0;
    const T mean = moments[2 * r], rstd = moments[2 * r + 1];
    if (dgamma != nullptr) {
      map_ternary(dgamma + c0, xr, gr, dgamma + c0, width,
                  [=]<class V>(V sum, V v, V gv) { return sum + gv * ((v - V(mean)) * V(rstd)); });
    }
    if (dbeta != nullptr) map_binary(dbeta + c0, 1, gr, 1, dbeta + c0, width, []<class V>(V sum, V gv) { return sum + gv; });
  }
}

/// Both, with the rows split across a pool.
template <class T>
void layer_norm_forward(ThreadPool* pool, const T* x, const T* gamma, const T* beta, T* y, std::int64_t rows,
                        std::int64_t n, T eps) {
  parallel_rows(pool, rows, n, [&](std::int64_t first, std::int64_t last) {
    layer_norm_forward(x + first * n, gamma, beta, y + first * n, last - first, n, eps);
  });
}

/// dx by rows, then dgamma and dbeta by columns (cut at multiples of every SIMD width, so each
/// column takes the same path as in one serial pass); moments holds 2 values per row.
template <class T>
void layer_norm_backward(ThreadPool* pool, const T* x, const T* g, const T* gamma, T* dx, T* dgamma, T* dbeta,
                         T* moments, std::int64_t rows, std::int64_t n, T eps) {
  parallel_rows(pool, rows, n, [&](std::int64_t first, std::int64_t last) {
    layer_norm_backward(x + first * n, g + first * n, gamma, dx + first * n, moments + 2 * first, last - first, n, eps);
  });
  if (dgamma == nullptr && dbeta == nullptr) return;
  const auto columns = [&](std::int64_t c0, std::int64_t c1) {
    layer_norm_affine_grads(x, g, moments, dgamma, dbeta, rows, n, c0, c1);
  };
  const std::int64_t blocks = (n + kChunkAlignment - 1) / kChunkAlignment;
  if (blocks < 2 || !worth_splitting(pool, rows * n)) {
    columns(0, n);
    return;
  }
  pool->parallel_for(blocks, [&](std::int64_t first, std::int64_t last) {
    columns(first * kChunkAlignment, std::min(n, last * kChunkAlignment));
  });
}

}  // namespace xg::kernels
