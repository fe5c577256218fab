#pragma once
// LayerNorm over contiguous rows of length n, forward and backward (llm.c's layout, no graph).
#include <cmath>
#include <cstdint>

#include "kernels/parallel.hpp"
#include "kernels/simd.hpp"

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

/// dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), the gradient through the normalization
/// for an upstream gradient g of x_hat.
template <class T>
void layer_norm_backward(const T* x, const T* g, T* dx, std::int64_t rows, std::int64_t n, T eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    const T* gr = g + r * n;
    T* dr = dx + r * n;
    const RowMoments<T> mo = row_moments(xr, n, eps);
    const T mean = mo.mean, rstd = mo.rstd;
    const T g_mean = reduce_sum(gr, n) / static_cast<T>(n);
    const T gx_mean = reduce_binary(gr, xr, n, [=]<class V>(V g, V v) { return g * (v - V(mean)); }) * rstd / static_cast<T>(n);
    map_binary(xr, 1, gr, 1, dr, n,
               [=]<class V>(V v, V g) { return V(rstd) * (g - V(g_mean) - (v - V(mean)) * V(rstd) * V(gx_mean)); });
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

template <class T>
void layer_norm_backward(ThreadPool* pool, const T* x, const T* g, T* dx, std::int64_t rows, std::int64_t n, T eps) {
  parallel_rows(pool, rows, n, [&](std::int64_t first, std::int64_t last) {
    layer_norm_backward(x + first * n, g + first * n, dx + first * n, last - first, n, eps);
  });
}

}  // namespace xg::kernels
